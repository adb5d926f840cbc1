//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
)

func startService(t *testing.T, name string) *fixtures.Service {
	t.Helper()
	f, err := fixtures.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Start(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

func assertRunning(t *testing.T, s *fixtures.Service, when string) {
	t.Helper()
	if err := s.Running(); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

func TestAttach(t *testing.T) {
	s := startService(t, "live-mutex-cgo")
	code, out, stderr := runCLI("attach", "--json", fmt.Sprint(s.PID()))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	assertRunning(t, s, "after attach")
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Input.LivePID != s.PID() || r.Input.FrozenMillis <= 0 || r.Input.Core != "" || r.Process.PID != s.PID() {
		t.Errorf("input %+v, process pid %d", r.Input, r.Process.PID)
	}
	if !strings.Contains(stderr, fmt.Sprintf("PID %d was stopped for ", s.PID())) {
		t.Errorf("stderr does not say how long the process was stopped: %s", stderr)
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", s.PID()))
	if len(r.Threads) != len(tasks) {
		t.Errorf("%d threads in the report, %d in /proc", len(r.Threads), len(tasks))
	}
	t.Logf("frozen for %.2f ms", r.Input.FrozenMillis)

	// The hang: the first finding is the contention on the mutex, with
	// the waiters' count and function and the holder's function.
	facts := s.Oracle.Facts
	if len(r.Findings) == 0 {
		t.Fatal("no findings")
	}
	f := r.Findings[0]
	want := fmt.Sprintf("%s goroutines in %s wait to lock sync.Mutex %s, held by goroutine ", facts["waiters"][0], facts["waiter"][0], facts["mutex"][0])
	if f.Class != "lock-contention" || !f.Cause || !strings.HasPrefix(f.Summary, want) ||
		!strings.Contains(f.Summary, " in "+facts["holder"][0]+", which is in C function "+facts["holder_c_function"][0]) {
		t.Errorf("first finding %s: %q; want %q... in %s, which is in C function %s", f.Class, f.Summary, want, facts["holder"][0], facts["holder_c_function"][0])
	}
}

func TestAttachErrors(t *testing.T) {
	s := startService(t, "live-mutex-cgo")
	pid := fmt.Sprint(s.PID())
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"attach"}, exitUsage, "missing PID"},
		{[]string{"attach", "x"}, exitUsage, "not a process ID"},
		{[]string{"attach", pid, "1"}, exitUsage, "too many arguments"},
		{[]string{"attach", "1073741824"}, exitBadInput, "PID 1073741824: no such process"},
		{[]string{"attach", fmt.Sprint(sleep.Process.Pid)}, exitBadInput, fmt.Sprintf("PID %d (sleep) is not a Go program", sleep.Process.Pid)},
		{[]string{"attach", "--stop-timeout", "1ns", pid}, exitBadInput, "did not stop within 1ns"},
		{[]string{"dump", "--stop-timeout", "1ns", pid, "-o", filepath.Join(t.TempDir(), "core")}, exitBadInput, "did not stop within 1ns"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("coreexplain %q: exit %d, %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
		assertRunning(t, s, fmt.Sprintf("after %q", tc.args))
	}
}

// Attaching as a user who may not trace the target fails with a reason and
// leaves it alone.
func TestAttachNotPermitted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run coreexplain as another user")
	}
	s := startService(t, "live-mutex-cgo")
	cmd := exec.Command(builtCommand(t), "attach", fmt.Sprint(s.PID()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	want := fmt.Sprintf("PID %d: not permitted to trace it: it runs as uid 0 and coreexplain as uid 65534", s.PID())
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != exitBadInput || !strings.Contains(string(out), want) {
		t.Errorf("%v: %s", err, out)
	}
	assertRunning(t, s, "after a refused attach")
}

// A signal to coreexplain while the target is stopped detaches it at
// once; a panic in the analysis detaches it too.
func TestAttachInterruptedOrPanicking(t *testing.T) {
	s := startService(t, "live-mutex-cgo")
	pid := fmt.Sprint(s.PID())
	release := make(chan struct{})
	var once sync.Once
	testHookStopped = func() error {
		if st, _ := s.State(); st != 't' {
			t.Errorf("in the hook the process is in state %c, want t", st)
		}
		once.Do(func() { syscall.Kill(os.Getpid(), syscall.SIGINT) })
		<-release
		return nil
	}
	defer func() { testHookStopped = nil }()
	start := time.Now()
	code, _, stderr := runCLI("attach", pid)
	close(release)
	if code != 128+int(syscall.SIGINT) || !strings.Contains(stderr, "interrupted by SIGINT; PID "+pid+" was detached and keeps running") {
		t.Errorf("exit %d after %v: %s", code, time.Since(start), stderr)
	}
	assertRunning(t, s, "after SIGINT")

	testHookStopped = func() error { panic("analysis bug") }
	code, _, stderr = runCLI("attach", pid)
	if code != exitBadInput || !strings.Contains(stderr, "internal error while PID "+pid+" was stopped: analysis bug (it was detached)") {
		t.Errorf("panic: exit %d: %s", code, stderr)
	}
	assertRunning(t, s, "after a panic")

	testHookStopped = func() error { return fmt.Errorf("analysis failed") }
	code, _, stderr = runCLI("attach", pid)
	if code != exitBadInput || !strings.Contains(stderr, "analysis failed") {
		t.Errorf("error: exit %d: %s", code, stderr)
	}
	assertRunning(t, s, "after a failed analysis")
}

// The real binary, interrupted by SIGINT, SIGTERM or SIGHUP at any moment,
// always leaves the target running.
func TestAttachSignalsToBinary(t *testing.T) {
	s := startService(t, "live-mutex-cgo")
	bin := builtCommand(t)
	sigs := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}
	outcomes := map[int]int{}
	defer func() { t.Logf("exit codes: %v", outcomes) }()
	for i := 0; i < 30; i++ {
		sig := sigs[i%len(sigs)]
		args := []string{"attach", fmt.Sprint(s.PID())}
		if i%2 == 1 {
			args = []string{"dump", "-o", filepath.Join(t.TempDir(), "core"), fmt.Sprint(s.PID())}
		}
		cmd := exec.Command(bin, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(10+i) * time.Millisecond)
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		outcomes[code]++
		switch {
		case code == 128+int(sig):
			if !strings.Contains(stderr.String(), "was detached and keeps running") {
				t.Errorf("%v after %dms: exit %d: %s", sig, i, code, stderr.String())
			}
		case code == exitOK:
			// Done before the signal arrived.
		case code == -1:
			// Killed by the signal before it was handled: nothing was
			// attached yet.
		default:
			t.Errorf("%q, %v after %dms: %v: %s", args, sig, i, err, stderr.String())
		}
		assertRunning(t, s, fmt.Sprintf("%q, %v after %dms (exit %d)", args, sig, i, code))
	}
}

func TestDump(t *testing.T) {
	s := startService(t, "live-mutex-cgo")
	out := filepath.Join(t.TempDir(), "service.core")
	code, _, stderr := runCLI("dump", "-o", out, fmt.Sprint(s.PID()))
	if code != exitOK || !strings.Contains(stderr, "wrote "+out) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	assertRunning(t, s, "after dump")
	p, err := coredump.Open(out, "", coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.PID != s.PID() || p.Exe == nil || p.Exe.HostPath != s.Binary {
		t.Errorf("core of pid %d, exe %+v", p.PID, p.Exe)
	}
	code, _, stderr = runCLI(out)
	if code != exitOK {
		t.Errorf("explaining the dumped core: exit %d: %s", code, stderr)
	}
}
