package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/spf13/pflag"
)

// liveFlags are the flags of every command that stops a live process.
type liveFlags struct {
	sysroot  string
	timeout  time.Duration
	progress progressFlag
}

func (l *liveFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&l.sysroot, "sysroot", "", "read the process's files under `DIR` (default: its own root, /proc/PID/root)")
	fs.DurationVar(&l.timeout, "stop-timeout", 5*time.Second, "give up when the threads do not all stop within this `TIME`")
	l.progress.add(fs)
}

func (l *liveFlags) open(e *env, pid int) (*coredump.Process, error) {
	if err := l.progress.check(); err != nil {
		return nil, err
	}
	if err := checkSysroot(l.sysroot); err != nil {
		return nil, err
	}
	p, err := coredump.OpenLive(pid, coredump.LiveOptions{Sysroot: l.sysroot, StopTimeout: l.timeout})
	if err != nil {
		return nil, err
	}
	l.progress.install(e, p)
	return p, nil
}

type attachFlags struct {
	live liveFlags
	out  reportFlags
}

func init() {
	register(&command{
		name:  "attach",
		short: "explain a live process, which keeps running",
		usage: "attach [flags] PID",
		summary: "Explain a live Go process without harming it: stop it for a few milliseconds, snapshot\n" +
			"what the analysis needs, let it run on, then explain why it is stuck (lock contention\n" +
			"and its holder, leaked goroutines, threads stuck in C). It is always left running: on\n" +
			"success, on errors, and when coreexplain is interrupted.",
		examples: []string{
			"coreexplain attach 4242",
			"coreexplain attach --json 4242 > hang.json",
			"coreexplain attach --all $(pidof server)",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			f := new(attachFlags)
			f.out.add(fs, "show every goroutine's full stack")
			f.live.add(fs)
			return f.run
		},
	})
}

func (f *attachFlags) run(e *env, args []string) int {
	pid, err := pidArg(args)
	if err != nil {
		return fail(e, err)
	}
	if err := f.out.check(); err != nil {
		return fail(e, err)
	}
	r, err := liveReport(e, &f.live, pid, report.Options{All: f.out.all})
	if err != nil {
		return failLive(e, err)
	}
	return f.out.write(e, r)
}

// liveReport builds the report on the live process pid: it stops it for
// the snapshot only and lets it run again whatever happens.
func liveReport(e *env, l *liveFlags, pid int, opts report.Options) (*report.Report, error) {
	p, err := l.open(e, pid)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	// What does not change while the process runs is loaded before it
	// is stopped, so that it stays frozen only for the snapshot.
	if _, err := goruntime.LoadBinary(p.Exe); err != nil {
		if errors.Is(err, goruntime.ErrNotGo) {
			return nil, fmt.Errorf("PID %d (%s) is not a Go program: %s", pid, p.Command, p.Exe.Path)
		}
		return nil, fmt.Errorf("PID %d: %w", pid, err)
	}
	p.LoadStatic()
	var r *report.Report
	err = whileStopped(p, func() error {
		r = report.Build(p, opts)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.Input.FrozenMillis = p.Frozen().Seconds() * 1000
	fmt.Fprintf(e.stderr, "coreexplain: PID %d was stopped for %.1f ms and is running again\n", pid, r.Input.FrozenMillis)
	return r, nil
}

// pidArg reads the one PID argument.
func pidArg(args []string) (int, error) {
	switch len(args) {
	case 0:
		return 0, usageError{"missing PID"}
	case 1:
	default:
		return 0, usageError{fmt.Sprintf("too many arguments: %q", args[1:])}
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil || pid <= 0 {
		return 0, usageError{fmt.Sprintf("%q is not a process ID", args[0])}
	}
	return pid, nil
}

// interruptedError reports that a signal to coreexplain cut the work on a
// live process short; the process was detached first.
type interruptedError struct {
	sig syscall.Signal
	pid int
}

func (e *interruptedError) Error() string {
	return fmt.Sprintf("interrupted by %s; PID %d was detached and keeps running", coredump.Signal(e.sig), e.pid)
}

// failLive reports an error of a command on a live process; a signal to
// coreexplain exits like a shell does, with 128 + the signal number.
func failLive(e *env, err error) int {
	var ie *interruptedError
	if errors.As(err, &ie) {
		fmt.Fprintf(e.stderr, "coreexplain: %v\n", err)
		return 128 + int(ie.sig)
	}
	return fail(e, err)
}

// testHookStopped, when set by a test, runs while the process is stopped.
var testHookStopped func() error

// whileStopped stops the live process p, runs work, and lets p run again
// whatever happens: work succeeds, fails or panics, Stop fails, or
// SIGINT, SIGTERM or SIGHUP reaches coreexplain. On a signal it detaches
// and returns an *interruptedError at once; a work still running then
// reads a running process and its result is dropped.
func whileStopped(p *coredump.Process, work func() error) error {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigc)
	var aborted atomic.Bool
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				derr := p.Detach()
				done <- fmt.Errorf("internal error while PID %d was stopped: %v (it was detached%s)\n%s",
					p.PID, v, detachNote(derr), panicSite())
			}
		}()
		if err := p.Stop(); err != nil {
			done <- err
			return
		}
		if aborted.Load() {
			p.Detach()
			return
		}
		var err error
		if testHookStopped != nil {
			err = testHookStopped()
		}
		if err == nil {
			err = work()
		}
		if derr := p.Detach(); derr != nil && err == nil {
			err = derr
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case sig := <-sigc:
		aborted.Store(true)
		p.Detach()
		return &interruptedError{sig: sig.(syscall.Signal), pid: p.PID}
	}
}

func detachNote(err error) string {
	if err != nil {
		return ", with an error: " + err.Error()
	}
	return ""
}

// panicSite is the part of a panicking goroutine's stack that names where
// it happened, for a bug report.
func panicSite() string {
	lines := strings.Split(strings.TrimSpace(string(debug.Stack())), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") && i+3 < len(lines) {
			return strings.Join(lines[i+2:min(len(lines), i+8)], "\n")
		}
	}
	return ""
}
