//go:build linux

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
)

// runBinary runs the coreexplain binary and returns its exit status and
// output.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(builtCommand(t), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	// As a user would run it: GOTRACEBACK is not set.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOTRACEBACK=") })
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// run turns a crash into a core and a report, with no ulimit and whatever
// core_pattern says, and exits like the program.
func TestRunCrash(t *testing.T) {
	f, err := fixtures.Load("go-nil-field")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := f.Build(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	code, out, stderr := runBinary(t, "run", "--json", "--core-dir", dir, "--", bin)
	if code != 128+int(syscall.SIGABRT) {
		t.Fatalf("exit %d, want %d\n%s", code, 128+int(syscall.SIGABRT), stderr)
	}
	o := fixtures.ParseOracle(stderr)
	if o.Signal != "SIGSEGV" || o.Goroutine == 0 {
		t.Errorf("the program's own crash output did not reach stderr: %+v", o)
	}
	cores, _ := filepath.Glob(filepath.Join(dir, "core.go-nil-field.*"))
	if len(cores) != 1 || !strings.Contains(stderr, "died of SIGABRT; core written to "+cores[0]) {
		t.Fatalf("cores %v; stderr:\n%s", cores, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	p, err := coredump.Open(cores[0], bin, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if r.Input.Core != cores[0] || r.Process.PID != p.PID || len(r.Threads) != len(p.Threads) || !r.Threads[0].Crashing {
		t.Errorf("report input %+v pid %d, %d threads", r.Input, r.Process.PID, len(r.Threads))
	}
}

func TestRunExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "--", "sh", "-c", "exit 0"}, 0, ""},
		{[]string{"run", "--", "sh", "-c", "exit 42"}, 42, ""},
		{[]string{"run", "sh", "-c", "kill -TERM $$"}, 128 + 15, ""},
		{[]string{"run", "--", "/nonexistent/prog"}, exitNotFound, "no such file"},
		{[]string{"run"}, exitUsage, "missing PROG"},
	} {
		code, _, stderr := runBinary(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("coreexplain %q: exit %d, want %d; stderr %q", tc.args, code, tc.code, stderr)
		}
	}
}

// A SIGTERM to coreexplain reaches the program.
func TestRunForwardsSignals(t *testing.T) {
	cmd := exec.Command(builtCommand(t), "run", "--", "sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no terminal
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) || time.Since(start) > 5*time.Second {
		t.Errorf("exit %d after %v: %s", code, time.Since(start), stderr.String())
	}
}
