package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/spf13/pflag"
)

type runFlags struct {
	coreDir    string
	allSignals bool
	out        reportFlags
}

// Exit statuses of run when the program cannot be started, as a shell
// reports them.
const (
	exitCannotExec = 126
	exitNotFound   = 127
)

func init() {
	register(&command{
		name:  "run",
		short: "run a program; explain it if it crashes",
		usage: "run [flags] -- PROG [ARGS...]",
		summary: "Run PROG and catch it in the act: when it dies of a crash signal or a Go fatal error, write\n" +
			"a core (no ulimit or core_pattern needed) and explain it. Exits with PROG's status\n" +
			"(128+N for a death by signal N); signals sent to coreexplain are passed on to PROG.\n" +
			"GOTRACEBACK=crash is set for PROG unless GOTRACEBACK is already set.",
		examples: []string{
			"coreexplain run -- ./server --port 8080",
			"coreexplain run --core-dir /var/tmp/cores -- ./batch-job",
			"coreexplain run --json -- ./flaky-test > crash.json",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			f := new(runFlags)
			fs.SetInterspersed(false) // PROG's own flags are not ours
			fs.StringVar(&f.coreDir, "core-dir", "", "write the core into `DIR` (default: PROG's directory)")
			fs.BoolVar(&f.allSignals, "all-signals", false, "also capture deaths by signals that do not dump core (SIGTERM, SIGINT, SIGPIPE...)")
			f.out.add(fs, "show every goroutine's full stack and the runtime's crash-handling frames")
			return f.run
		},
	})
}

func (f *runFlags) run(e *env, args []string) int {
	if len(args) == 0 {
		return fail(e, usageError{"missing PROG"})
	}
	if err := f.out.check(); err != nil {
		return fail(e, err)
	}
	env := os.Environ()
	if os.Getenv("GOTRACEBACK") == "" {
		// The runtime then re-raises its fatal errors as SIGABRT
		// instead of exiting with status 2.
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GOTRACEBACK=") })
		env = append(env, "GOTRACEBACK=crash")
	}
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigc)
	fwd := make(chan os.Signal, 8)
	go forwardSignals(sigc, fwd)
	res, err := coredump.Run(args[0], args[1:], coredump.RunOptions{Env: env, CoreDir: f.coreDir, AllSignals: f.allSignals, Signals: fwd})
	close(sigc)
	if err != nil {
		fmt.Fprintf(e.stderr, "coreexplain: %v\n", err)
		var ee *exec.Error
		if errors.As(err, &ee) || errors.Is(err, os.ErrNotExist) {
			return exitNotFound
		}
		return exitCannotExec
	}
	if res.Signal == 0 {
		return res.Status()
	}
	what := fmt.Sprintf("%s (PID %d) died of %s", args[0], res.PID, res.Signal)
	if res.Core == "" {
		switch {
		case res.CoreErr != nil:
			fmt.Fprintf(e.stderr, "coreexplain: %s; no core was written: %v\n", what, res.CoreErr)
		case res.Signal == coredump.SIGKILL:
			fmt.Fprintf(e.stderr, "coreexplain: %s; SIGKILL cannot be caught, so there is no core\n", what)
		case res.SigInfo == nil:
			fmt.Fprintf(e.stderr, "coreexplain: %s; no core was written (pass --all-signals to capture signals that do not dump core)\n", what)
		}
		return res.Status()
	}
	fmt.Fprintf(e.stderr, "coreexplain: %s; core written to %s (held %.1f ms to write it)\n", what, res.Core, res.Frozen.Seconds()*1000)
	exe, _ := exec.LookPath(args[0])
	if exe != "" {
		exe, _ = filepath.Abs(exe)
	}
	p, err := coredump.Open(res.Core, exe, coredump.Options{})
	if err != nil {
		fmt.Fprintf(e.stderr, "coreexplain: %v\n", err)
		return res.Status()
	}
	defer p.Close()
	f.out.write(e, report.Build(p, report.Options{All: f.out.all}))
	return res.Status()
}

// forwardSignals passes the signals coreexplain receives on to the
// program, except those a terminal sent to the whole foreground process
// group, which the program got too (Ctrl-C, Ctrl-\, a hang-up).
func forwardSignals(in <-chan os.Signal, out chan<- os.Signal) {
	for sig := range in {
		switch sig {
		case syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP:
			if inForeground() {
				continue
			}
		}
		select {
		case out <- sig:
		default:
		}
	}
}

// inForeground reports whether coreexplain's process group is the
// foreground group of its controlling terminal.
func inForeground() bool {
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return false
	}
	defer tty.Close()
	var pgrp int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, tty.Fd(), syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp))); e != 0 {
		return false
	}
	return int(pgrp) == syscall.Getpgrp()
}
