package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/dlvext"
	"github.com/spf13/pflag"
)

// debugger is a debugger coreexplain starts with its helpers loaded.
type debugger struct {
	name    string // the command's name and the executable's
	envVar  string // the variable naming the executable, "" for PATH only
	install string // how to install it
	helpers string // the helper file in dlvext.Files
	// initFile is the debugger command file that loads the helpers and
	// binds them to the report.
	initFile func(l *launch) string
	// argv is the debugger's command line.
	argv func(l *launch) []string
	// env is what the debugger's environment adds.
	env func(l *launch) []string
}

// launch is one debugger session: what the analysis found and where its
// files are.
type launch struct {
	helpers  string // the helper file, written into dir
	report   string // coreexplain's JSON report, in dir
	init     string // the command file that loads both, in dir
	userInit string // --init, as a file the debugger reads as commands
	core     string
	binary   string
	pid      int // a live target, 0 for a core
	rep      *report.Report
	extra    []string // the debugger's own arguments, after --
	// files are descriptors the debugger inherits, from 3 on: the
	// decompressed copy of a compressed core.
	files []*os.File
	// nonTerminal is set when stdin, stdout or stderr is no terminal.
	nonTerminal bool
}

var debuggers = []*debugger{
	{
		name:     "dlv",
		envVar:   "DLV",
		install:  "go install github.com/go-delve/delve/cmd/dlv@latest",
		helpers:  dlvext.DelveHelpers,
		initFile: dlvInit,
		argv:     dlvArgs,
		env:      func(*launch) []string { return nil },
	},
	{
		name:     "gdb",
		install:  "apt-get install gdb",
		helpers:  dlvext.GdbHelpers,
		initFile: gdbInit,
		argv:     gdbArgs,
		env:      gdbEnv,
	},
}

// dlvInit loads the helpers, then binds them to the report with `explain
// REPORT`, the helpers' own mechanism: it writes REPORT.star next to the
// report (here in the session's directory) and sources it, which also
// tells the crash story and selects the crash site. A Delve init file is
// read as commands, line by line (Delve's documentation, dlv --help).
func dlvInit(l *launch) string {
	s := "source " + l.helpers + "\nexplain " + l.report + "\n"
	if l.userInit != "" {
		s += "source " + l.userInit + "\n"
	}
	return s
}

func dlvArgs(l *launch) []string {
	var a []string
	if l.pid > 0 {
		a = []string{"attach", strconv.Itoa(l.pid)}
	} else {
		a = []string{"core", l.binary, l.core}
	}
	a = append(a, "--init", l.init)
	if l.nonTerminal {
		// Delve refuses a session without a terminal on stdin, stdout and
		// stderr unless told (dlv --help).
		a = append(a, "--allow-non-terminal-interactive=true")
	}
	if goOlderThan(l.rep.Process.GoVersion, 25) {
		// Delve v1.27 refuses binaries of Go older than 1.25 unless told
		// (dlv --help, --check-go-version); the helpers read them.
		a = append(a, "--check-go-version=false")
	}
	return append(a, l.extra...)
}

// gdbInit loads the helpers and hands them the report with `ce explain
// REPORT`, which caches it for the target (so no command runs coreexplain
// again for it), tells the crash story and selects the crash site.
func gdbInit(l *launch) string {
	return "source " + l.helpers + "\nce explain " + l.report + "\n"
}

// gdbArgs: gdb loads the executable and the core (or attaches), then runs
// the -x files in order (gdb's documentation, "Startup").
func gdbArgs(l *launch) []string {
	a := []string{"-q", "-x", l.init}
	if l.userInit != "" {
		a = append(a, "-x", l.userInit)
	}
	a = append(a, l.extra...)
	if l.pid > 0 {
		return append(a, "-p", strconv.Itoa(l.pid))
	}
	return append(a, l.binary, l.core)
}

// gdbEnv points the gdb helpers at this coreexplain: on a core, ce
// slicecheck and ce addrinfo run it.
func gdbEnv(*launch) []string {
	self, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{"COREEXPLAIN=" + self}
}

type launchFlags struct {
	core        coreFlags
	stopTimeout time.Duration
	init        string
}

func init() {
	for _, d := range debuggers {
		name := map[string]string{"dlv": "Delve", "gdb": "gdb"}[d.name]
		register(&command{
			name:  d.name,
			short: "start " + name + " on a core or a live process with coreexplain's helpers loaded",
			usage: d.name + " [flags] CORE [BINARY] [-- " + strings.ToUpper(d.name) + "-ARGS]\n" +
				"       coreexplain " + d.name + " [flags] attach PID [-- " + strings.ToUpper(d.name) + "-ARGS]",
			summary: "Analyse CORE (or stop PID for a snapshot and let it run again), then start " + name + "\n" +
				"with coreexplain's helpers (gm, errno, explain, slicecheck, addrinfo) loaded and bound to\n" +
				"the report, so that they answer at the first prompt. The report and the helpers are\n" +
				"written into the user's cache directory and removed when " + name + " exits. " + name + " is\n" +
				lookupNote(d) + "; its exit status is coreexplain's.",
			examples: []string{
				"coreexplain " + d.name + " core.1234 ./server",
				"coreexplain " + d.name + " attach 4242",
				"coreexplain " + d.name + " --init cmds core.1234 ./server" + map[string]string{"dlv": " < /dev/null", "gdb": " -- -batch"}[d.name],
			},
			setup: func(fs *pflag.FlagSet) runFunc {
				f := new(launchFlags)
				fs.StringVar(&f.init, "init", "", "run the "+name+" commands in `FILE` once the helpers are loaded")
				f.core.add(fs)
				fs.DurationVar(&f.stopTimeout, "stop-timeout", 5*time.Second, "attach: give up when the threads do not all stop within this `TIME`")
				return func(e *env, args []string) int { return f.run(e, d, args) }
			},
		})
	}
}

func lookupNote(d *debugger) string {
	if d.envVar != "" {
		return "$" + d.envVar + ", else " + d.name + " on PATH"
	}
	return d.name + " on PATH"
}

func (f *launchFlags) run(e *env, d *debugger, args []string) int {
	l := &launch{}
	if n := e.fs.ArgsLenAtDash(); n >= 0 {
		args, l.extra = args[:n], args[n:]
	}
	attach := len(args) > 0 && args[0] == "attach"
	var err error
	if attach {
		l.pid, err = pidArg(args[1:])
	} else {
		l.core, l.binary, err = coreArgs(args)
	}
	if err != nil {
		return fail(e, err)
	}
	if err := f.core.progress.check(); err != nil {
		return fail(e, err)
	}
	if err := checkSysroot(f.core.sysroot); err != nil {
		return fail(e, err)
	}
	if f.init != "" {
		if st, err := os.Stat(f.init); err != nil || !st.Mode().IsRegular() {
			return fail(e, usageError{fmt.Sprintf("--init %s: not a readable file", f.init)})
		}
	}
	// The debugger is looked for first: a live target is not stopped for
	// a session that cannot start.
	path, err := findDebugger(d)
	if err != nil {
		return fail(e, err)
	}
	if attach {
		live := liveFlags{sysroot: f.core.sysroot, timeout: f.stopTimeout, progress: f.core.progress}
		l.rep, err = liveReport(e, &live, l.pid, report.Options{})
		if err != nil {
			return failLive(e, err)
		}
	} else {
		p, err := f.core.open(e, l.core, l.binary)
		if err != nil {
			return fail(e, err)
		}
		l.rep = report.Build(p, report.Options{})
		if cp := p.Decompressed(); cp != nil {
			// The debugger reads only plain cores: it gets the copy
			// coreexplain decompressed, as an inherited descriptor
			// (its path in the debugger's own /proc/self/fd), kept open
			// until it exits.
			defer p.Close()
			l.files = []*os.File{cp}
			l.core = inheritedPath(3)
		} else {
			p.Close()
		}
		if l.binary == "" {
			if l.binary = l.rep.Input.Binary; l.binary == "" {
				return fail(e, fmt.Errorf("%s does not say where its executable is: name BINARY", l.core))
			}
		}
	}
	s, err := newSession(d.name)
	if err != nil {
		return fail(e, err)
	}
	defer s.remove()
	if err := l.write(s.dir, d, f.init); err != nil {
		return fail(e, err)
	}
	l.nonTerminal = !isTerminal(os.Stdin) || !isTerminal(e.stdout) || !isTerminal(e.stderr)
	if attach && d.name == "dlv" {
		fmt.Fprintf(e.stderr, "coreexplain: leave with `exit -d` to detach and let PID %d run on (a plain exit asks whether to kill it)\n", l.pid)
	}
	var before procState
	if attach {
		before = stateOf(l.pid)
	}
	code := runDebugger(e, path, d.argv(l), d.env(l), l.files)
	if attach {
		keepRunning(e, l.pid, before)
	}
	return code
}

// write puts the helpers, the report and the init file into dir.
func (l *launch) write(dir string, d *debugger, userInit string) error {
	src, err := fs.ReadFile(dlvext.Files, d.helpers)
	if err != nil {
		return err
	}
	l.helpers = filepath.Join(dir, filepath.Base(d.helpers))
	l.report = filepath.Join(dir, "report.json")
	l.init = filepath.Join(dir, d.name+".init")
	js, err := json.MarshalIndent(l.rep, "", "  ")
	if err != nil {
		return err
	}
	if userInit != "" {
		if l.userInit, err = filepath.Abs(userInit); err != nil {
			return err
		}
		if d.name == "dlv" && filepath.Ext(userInit) == ".star" {
			// Delve's source runs a .star file as Starlark, its --init
			// never does: a copy without the extension keeps --init's
			// meaning.
			b, err := os.ReadFile(userInit)
			if err != nil {
				return err
			}
			l.userInit = filepath.Join(dir, "user.init")
			if err := os.WriteFile(l.userInit, b, 0o600); err != nil {
				return err
			}
		}
	}
	for _, w := range []struct {
		path string
		data []byte
	}{{l.helpers, src}, {l.report, append(js, '\n')}, {l.init, []byte(d.initFile(l))}} {
		if err := os.WriteFile(w.path, w.data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// findDebugger is the debugger's executable: $DLV for Delve when set,
// else the name on PATH.
func findDebugger(d *debugger) (string, error) {
	where := d.name + " on PATH"
	name := d.name
	if d.envVar != "" {
		if v := os.Getenv(d.envVar); v != "" {
			where, name = "$"+d.envVar+"="+v, v
		}
	}
	path, err := exec.LookPath(name)
	if err != nil {
		why := "not found"
		if !errors.Is(err, exec.ErrNotFound) {
			why = rootCause(err)
		}
		return "", fmt.Errorf("%s: %s; install %s with `%s`", where, why, d.name, d.install)
	}
	return path, nil
}

// rootCause is the reason inside an exec or path error, without the file
// name it repeats.
func rootCause(err error) string {
	var xe *exec.Error
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		return pe.Err.Error()
	case errors.As(err, &xe):
		return xe.Err.Error()
	}
	return err.Error()
}

// goOlderThan reports whether the Go version v ("go1.22.12") is older than
// go1.minor; false for a version it cannot read.
func goOlderThan(v string, minor int) bool {
	rest, ok := strings.CutPrefix(v, "go1.")
	if !ok {
		return false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	n, err := strconv.Atoi(rest[:i])
	return err == nil && n < minor
}

// runDebugger runs the debugger as a child on coreexplain's terminal and
// returns its exit status (128 + the signal when a signal ended it). It
// stays a child rather than replacing coreexplain so that the session's
// files are removed and a live target is checked when it exits. SIGINT
// and SIGQUIT from the terminal reach the whole foreground process group,
// the debugger too: coreexplain ignores them, so Ctrl-C interrupts the
// debugger's command and not the session. SIGTERM and SIGHUP, which are
// sent to coreexplain alone, are passed on.
func runDebugger(e *env, path string, argv, env []string, files []*os.File) int {
	cmd := exec.Command(path, argv...)
	cmd.ExtraFiles = files
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	cmd.Env = append(os.Environ(), env...)
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigc)
	if err := cmd.Start(); err != nil {
		return fail(e, fmt.Errorf("cannot start %s: %s", path, rootCause(err)))
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigc:
				if s == syscall.SIGTERM || s == syscall.SIGHUP {
					cmd.Process.Signal(s)
				}
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	if err == nil {
		return exitOK
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fail(e, err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}

// session is a debugger session's directory in the user's cache.
type session struct {
	dir    string
	unlock func()
}

// staleSession is the age after which a session directory that no running
// coreexplain holds is removed: it is left by a coreexplain that was
// killed. The age also spares a directory just created and not yet
// locked.
const staleSession = time.Hour

// newSession makes the directory of a new session under
// os.UserCacheDir()/coreexplain/sessions, named after the debugger and
// coreexplain's PID plus a random part, so that sessions running at once
// never share files. It holds a lock on it while the session lasts, and
// first removes stale sessions.
func newSession(tool string) (*session, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, fmt.Errorf("no cache directory for the session's files: %w", err)
	}
	root := filepath.Join(cache, "coreexplain", "sessions")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	pruneSessions(root, time.Now())
	dir, err := os.MkdirTemp(root, fmt.Sprintf("%s-%d-", tool, os.Getpid()))
	if err != nil {
		return nil, err
	}
	unlock, err := lockSession(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &session{dir: dir, unlock: unlock}, nil
}

func (s *session) remove() {
	os.RemoveAll(s.dir)
	s.unlock()
}

// pruneSessions removes the session directories under root that are
// stale and that no running coreexplain holds.
func pruneSessions(root string, now time.Time) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, ent := range ents {
		info, err := ent.Info()
		if err != nil || !ent.IsDir() || now.Sub(info.ModTime()) < staleSession {
			continue
		}
		dir := filepath.Join(root, ent.Name())
		if sessionHeld(dir) {
			continue
		}
		os.RemoveAll(dir)
	}
}
