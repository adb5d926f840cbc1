package dlvext_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// launchResult is what a `coreexplain dlv` or `coreexplain gdb` session
// printed: out[i] is what the i-th --init command printed.
type launchResult struct {
	code   int
	out    []string
	all    string // stdout and stderr
	stderr string
}

// launch runs `coreexplain TOOL [ARGS...]` from an empty temporary directory
// with the real dlv as $DLV and a cache directory of its own, with an
// --init file of cmds (each preceded by a marker) when cmds are given. It
// checks that the session left no file in the working directory, in the
// cache or next to the core.
func launch(t testing.TB, tool string, args, cmds []string, extraEnv ...string) launchResult {
	t.Helper()
	buildTools(t)
	wd, cache := t.TempDir(), t.TempDir()
	if len(cmds) > 0 {
		var init strings.Builder
		for i, c := range cmds {
			if tool == "dlv" {
				fmt.Fprintf(&init, "print \"@@@ %d\"\n%s\n", i, c)
			} else {
				fmt.Fprintf(&init, "echo @@@ %d\\n\n%s\n", i, c)
			}
		}
		if tool == "dlv" {
			// exit -d: an attached process is detached without the question
			// whether to kill it.
			init.WriteString("print \"@@@ end\"\nexit -d\n")
		}
		initFile := filepath.Join(t.TempDir(), "cmds")
		if err := os.WriteFile(initFile, []byte(init.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--init", initFile}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.coreexplain, append([]string{tool}, args...)...)
	cmd.Dir = wd
	// Not a terminal: what scripts and CI do. "n" would answer Delve's
	// question whether to kill an attached process.
	cmd.Stdin = strings.NewReader("n\n")
	cmd.Env = append(os.Environ(), "DLV="+tools.dlv, "XDG_CACHE_HOME="+cache, "XDG_CONFIG_HOME="+cache, "HOME="+cache, "TERM=dumb")
	cmd.Env = append(cmd.Env, extraEnv...)
	var all, stdout, stderr bytes.Buffer
	cmd.Stdout = &tee{all: &all, own: &stdout, mu: new(sync.Mutex)}
	cmd.Stderr = &tee{all: &all, own: &stderr, mu: cmd.Stdout.(*tee).mu}
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("coreexplain %s %s: no exit within %s:\n%s", tool, strings.Join(args, " "), sessionTimeout, all.String())
	}
	r := launchResult{all: ansi.ReplaceAllString(all.String(), ""), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	t.Logf("coreexplain %s %s: exit %d in %.2fs:\n%s", tool, strings.Join(args, " "), r.code, time.Since(start).Seconds(), r.all)
	marker, text := dlvMarker, all.String()
	if tool == "gdb" {
		// The launcher hands gdb its own stdout and stderr, which are two
		// pipes here: what the test reads of them interleaves at random,
		// a warning of gdb's on stderr inside a line of a table. The
		// commands' answers are read from stdout alone.
		marker, text = gdbMarker, stdout.String()
	}
	r.out = sections(t, text, marker, len(cmds))
	// Nothing is left behind: not in the working directory, not in the
	// cache once the session is over.
	for _, d := range []string{wd, filepath.Join(cache, "coreexplain", "sessions")} {
		if ents, _ := os.ReadDir(d); len(ents) > 0 {
			t.Errorf("the session left %s in %s", ents[0].Name(), d)
		}
	}
	return r
}

// tee writes to the output shared by stdout and stderr, under a lock the
// two share, and to a buffer of its own.
type tee struct {
	all, own *bytes.Buffer
	mu       *sync.Mutex
}

func (w *tee) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	if w.own != nil {
		w.own.Write(p)
	}
	return len(p), nil
}

// noFilesNextTo fails when a session wrote a report or a binding next to
// the core.
func noFilesNextTo(t testing.TB, c *fixtures.Crash) {
	t.Helper()
	for _, pat := range []string{"*.star", "*.json.star", "report.json", "*.init"} {
		if m, _ := filepath.Glob(filepath.Join(filepath.Dir(c.Core), pat)); len(m) > 0 {
			t.Errorf("a session wrote %s next to the core", m[0])
		}
	}
}

// TestLaunchDelve: `coreexplain dlv CORE BINARY` from a directory that is
// not the repository, stdin not a terminal: the commands answer with the
// report's knowledge at once — every worker thread's errno, the crashing
// thread's M, the nil-deref field — and a Go 1.22 core opens without
// anyone passing Delve's --check-go-version=false.
func TestLaunchDelve(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {CC: "musl-gcc"}} {
		t.Run("errno/"+v.String(), func(t *testing.T) {
			c := crash(t, "cgo-errno-threads", v)
			r := launch(t, "dlv", []string{c.Core, c.Binary}, []string{"errno", "gm"})
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			checkErrno(t, r.out[0], c.Oracle.Facts)
			checkCrashingM(t, "gm", r.out[1], c)
			noFilesNextTo(t, c)
		})
	}
	t.Run("nil-field", func(t *testing.T) {
		c := crash(t, "go-nil-field", fixtures.Default)
		// The binary left out: the launcher takes the one the core names.
		r := launch(t, "dlv", []string{c.Core}, []string{"explain", "whatis s", "gm"})
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		// The report is bound when the session starts: explain has run.
		mustContain(t, "start-up", r.all, "coreexplain report on")
		mustContain(t, "explain", r.out[0], "[nil-deref, high]", "Limits.MaxIdle", "*main.Config",
			fmt.Sprintf("selected goroutine %d frame", c.Oracle.Goroutine), ": main.(*Server).maxIdle main.go:24")
		mustContain(t, "whatis s", r.out[1], "*main.Server")
		checkCrashingM(t, "gm", r.out[2], c)
	})
	t.Run("go1.22", func(t *testing.T) {
		c := crash(t, "go-nil-field", fixtures.Variant{Go: "go1.22.12"})
		r := launch(t, "dlv", []string{c.Binary, c.Core}, []string{"gm", "explain"})
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		checkCrashingM(t, "gm", r.out[0], c)
		mustContain(t, "explain", r.out[1], "Limits.MaxIdle", ": main.(*Server).maxIdle main.go:24")
	})
	t.Run("dlv arguments", func(t *testing.T) {
		// Arguments after -- reach dlv (which reports an unknown flag and
		// exits 0).
		c := crash(t, "go-nil-field", fixtures.Default)
		r := launch(t, "dlv", []string{c.Core, c.Binary, "--", "--no-such-flag"}, nil)
		if r.code != 0 || !strings.Contains(r.all, "unknown flag: --no-such-flag") {
			t.Errorf("exit %d: dlv did not get --no-such-flag", r.code)
		}
	})
}

// TestLaunchGdb: `coreexplain gdb CORE BINARY -- -batch`, stdin not a
// terminal: ce errno, ce gm and ce explain answer from the report the
// launcher made.
func TestLaunchGdb(t *testing.T) {
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skip("gdb is not installed (Debian package gdb)")
	}
	for _, v := range []fixtures.Variant{fixtures.Default, {CC: "musl-gcc"}} {
		t.Run("errno/"+v.String(), func(t *testing.T) {
			c := crash(t, "cgo-errno-threads", v)
			r := launch(t, "gdb", []string{c.Core, c.Binary, "--", "-batch"}, []string{"ce errno", "ce gm"})
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			checkErrno(t, r.out[0], c.Oracle.Facts)
			checkCrashingM(t, "ce gm", r.out[1], c)
			noFilesNextTo(t, c)
		})
	}
	t.Run("nil-field", func(t *testing.T) {
		c := crash(t, "go-nil-field", fixtures.Default)
		// No -batch: gdb reads the rest of its commands from stdin, which
		// is not a terminal, and ends at its end.
		r := launch(t, "gdb", []string{c.Core, c.Binary}, []string{"ce explain", "ce addrinfo 0x80"})
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		mustContain(t, "ce explain", r.out[0], "[nil-deref, high]", "Limits.MaxIdle", "*main.Config", ": main.(*Server).maxIdle main.go:24")
		// ce addrinfo runs coreexplain: the launcher itself, not one on PATH.
		mustContain(t, "ce addrinfo 0x80", r.out[1], "0x80  null-page", "DANGLING")
	})
}

// TestLaunchLive: `coreexplain dlv attach PID` and `coreexplain gdb attach
// PID` on a live process: every thread's errno as the fixture set it, and
// the process runs on, untraced (checked when the test ends).
func TestLaunchLive(t *testing.T) {
	s := startLive(t, "live-cgo-workers", fixtures.Default)
	pid := strconv.Itoa(s.pid)
	r := launch(t, "dlv", []string{"attach", pid}, []string{"errno", "gm"})
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	checkErrno(t, r.out[0], s.facts)
	checkLiveGM(t, r.out[1], s)
	mustContain(t, "coreexplain's note", r.stderr, "was stopped for", "is running again")
	checkRunningNow(t, s.pid)
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skip("gdb is not installed (Debian package gdb)")
	}
	r = launch(t, "gdb", []string{"attach", pid, "--", "-batch"}, []string{"ce errno"})
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	checkErrno(t, r.out[0], s.facts)
	checkRunningNow(t, s.pid)
}

// TestLaunchLiveTerminated: SIGTERM to the launcher while dlv is attached
// ends the session (the launcher passes it on, exits with 128+15 like a
// shell) and the process runs on, untraced; the session's files are gone.
func TestLaunchLiveTerminated(t *testing.T) {
	s := startLive(t, "live-cgo-workers", fixtures.Default)
	buildTools(t)
	cache := t.TempDir()
	cmd := exec.Command(tools.coreexplain, "dlv", "attach", strconv.Itoa(s.pid))
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "DLV="+tools.dlv, "XDG_CACHE_HOME="+cache, "XDG_CONFIG_HOME="+cache, "TERM=dumb")
	stdin, err := cmd.StdinPipe() // held open: the session waits at its prompt
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The helpers bound to the report tell its story once dlv is attached.
	waitLine(t, lines, "coreexplain report on ")
	if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid)); bytes.Contains(st, []byte("\nTracerPid:\t0\n")) {
		t.Fatalf("dlv is not attached at its prompt:\n%s", st)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines {
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Errorf("launcher ended with %v, want exit status 143", err)
	}
	checkRunningNow(t, s.pid)
	if ents, _ := os.ReadDir(filepath.Join(cache, "coreexplain", "sessions")); len(ents) > 0 {
		t.Errorf("the session left %s", ents[0].Name())
	}
}

// checkRunningNow: the process is neither stopped nor traced
// (/proc/PID/stat's state, /proc/PID/status's TracerPid).
func checkRunningNow(t testing.TB, pid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if st := b[i+2]; st == 't' || st == 'T' {
		t.Errorf("process %d is in state %c", pid, st)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(st, []byte("\nTracerPid:\t0\n")) {
		t.Errorf("process %d is traced:\n%s", pid, st)
	}
}

// TestLaunchDebuggerFails: when the debugger is missing the launcher says so
// in one line, with how to install it, exit 2, before it touches a live
// target; when the debugger fails after the snapshot, the target runs on,
// untraced, and the launcher exits with the debugger's status.
func TestLaunchDebuggerFails(t *testing.T) {
	c := crash(t, "go-nil-field", fixtures.Default)
	oneLine := func(t *testing.T, r launchResult, wants ...string) {
		t.Helper()
		if r.code != 2 || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("exit %d, stderr %q: want 2 and one line", r.code, r.stderr)
		}
		mustContain(t, "stderr", r.stderr, wants...)
	}
	t.Run("no dlv", func(t *testing.T) {
		oneLine(t, launch(t, "dlv", []string{c.Core, c.Binary}, nil, "DLV=/nonexistent"),
			"$DLV=/nonexistent", "go install github.com/go-delve/delve/cmd/dlv@latest")
	})
	t.Run("no gdb", func(t *testing.T) {
		oneLine(t, launch(t, "gdb", []string{c.Core, c.Binary}, nil, "PATH="+t.TempDir()),
			"gdb on PATH: not found", "apt-get install gdb")
	})
	s := startLive(t, "live-cgo-workers", fixtures.Default)
	pid := strconv.Itoa(s.pid)
	t.Run("attach, no dlv", func(t *testing.T) {
		r := launch(t, "dlv", []string{"attach", pid}, nil, "DLV=/nonexistent")
		oneLine(t, r, "go install github.com/go-delve/delve/cmd/dlv@latest")
		if strings.Contains(r.stderr, "was stopped") {
			t.Errorf("the target was stopped for a debugger that is not there: %s", r.stderr)
		}
		checkRunningNow(t, s.pid)
	})
	dir := t.TempDir()
	failing := filepath.Join(dir, "dlv-exits-3")
	broken := filepath.Join(dir, "dlv-not-a-program")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho dlv fails >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(broken, []byte("\x7fELF garbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("attach, dlv exits", func(t *testing.T) {
		r := launch(t, "dlv", []string{"attach", pid}, nil, "DLV="+failing)
		if r.code != 3 {
			t.Errorf("exit %d, want the debugger's 3", r.code)
		}
		mustContain(t, "stderr", r.stderr, "is running again", "dlv fails")
		checkRunningNow(t, s.pid)
	})
	t.Run("attach, dlv does not start", func(t *testing.T) {
		r := launch(t, "dlv", []string{"attach", pid}, nil, "DLV="+broken)
		if r.code != 2 {
			t.Errorf("exit %d, want 2", r.code)
		}
		mustContain(t, "stderr", r.stderr, "is running again", "cannot start "+broken)
		checkRunningNow(t, s.pid)
	})
}

// TestSourceByAbsolutePath: the helper files sourced by their full path
// from a directory that is not the repository, in dlv and in gdb.
func TestSourceByAbsolutePath(t *testing.T) {
	c := crash(t, "go-nil-field", fixtures.Default)
	out := dlvCore(t, c, "gm") // dlv sources the helpers by full path from a temporary directory
	checkCrashingM(t, "dlv gm", out[0], c)
	out = gdbCore(t, c, "ce gm") // as does gdb
	checkCrashingM(t, "gdb ce gm", out[0], c)
}

// TestLaunchSignals: Ctrl-C at the terminal signals the whole foreground
// process group; the launcher must survive it and leave it to the
// debugger, whose exit status it then returns. SIGTERM sent to the
// launcher alone is passed on to the debugger.
func TestLaunchSignals(t *testing.T) {
	c := crash(t, "go-nil-field", fixtures.Default)
	buildTools(t)
	// A stand-in debugger that reports the signal it gets and exits with a
	// status of its own for each.
	fake := filepath.Join(t.TempDir(), "dlv")
	script := "#!/bin/sh\ntrap 'echo got INT; exit 5' INT\ntrap 'echo got TERM; exit 6' TERM\necho ready\nwhile :; do sleep 0.05; done\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		group bool // signal the process group, as a terminal does
		sig   syscall.Signal
		code  int
		said  string
	}{
		{"Ctrl-C", true, syscall.SIGINT, 5, "got INT"},
		{"SIGTERM", false, syscall.SIGTERM, 6, "got TERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tools.coreexplain, "dlv", c.Core, c.Binary)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), "DLV="+fake, "XDG_CACHE_HOME="+t.TempDir())
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			lines := make(chan string, 16)
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			waitLine(t, lines, "ready")
			target := cmd.Process.Pid
			if tc.group {
				target = -target
			}
			if err := syscall.Kill(target, tc.sig); err != nil {
				t.Fatal(err)
			}
			waitLine(t, lines, tc.said)
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Errorf("launcher ended with %v, want the debugger's exit status %d", err, tc.code)
			}
		})
	}
}

// waitLine waits for a line that starts with want.
func waitLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before %q", want)
			}
			if strings.HasPrefix(l, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q within a minute", want)
		}
	}
}

// TestLaunchCompressed: a zstd core, as systemd-coredump stores them. The
// debuggers read only plain cores; the launcher hands them the copy it
// decompressed, as an inherited descriptor, and gdb's ce addrinfo passes it
// on to the coreexplain it runs. Nothing is written for it anywhere.
func TestLaunchCompressed(t *testing.T) {
	c := crash(t, "cgo-errno-threads", fixtures.Default)
	zst := filepath.Join(t.TempDir(), "core.zst")
	fixturetest.CompressZstd(t, c.Core, zst)
	r := launch(t, "dlv", []string{zst, c.Binary}, []string{"errno", "gm"})
	if r.code != 0 {
		t.Fatalf("dlv: exit %d", r.code)
	}
	checkErrno(t, r.out[0], c.Oracle.Facts)
	checkCrashingM(t, "gm", r.out[1], c)
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skip("gdb is not installed (Debian package gdb)")
	}
	r = launch(t, "gdb", []string{zst, c.Binary, "--", "-batch"}, []string{"ce errno", "ce gm", "ce addrinfo 0x0"})
	if r.code != 0 {
		t.Fatalf("gdb: exit %d", r.code)
	}
	checkErrno(t, r.out[0], c.Oracle.Facts)
	checkCrashingM(t, "ce gm", r.out[1], c)
	mustContain(t, "ce addrinfo 0x0", r.out[2], "0x0  null-page")
	if ents, _ := os.ReadDir(filepath.Dir(zst)); len(ents) != 1 {
		t.Errorf("%d files beside the compressed core, want only it", len(ents))
	}
}
