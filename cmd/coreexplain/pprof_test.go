package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
	"github.com/google/pprof/profile"
)

// runBuilt runs the built coreexplain and returns its exit code, stdout
// and stderr.
func runBuilt(t *testing.T, args ...string) (int, []byte, string) {
	t.Helper()
	cmd := exec.Command(builtCommand(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.Bytes(), errb.String()
}

// coreexplain pprof writes profiles go tool pprof reads, to a file or to
// stdout; bad requests fail with a usage error (exit 1) or an input error
// (exit 2), say why on one line, and write nothing.
func TestPprofCommand(t *testing.T) {
	c := fixturetest.MustCrash(t, "go-heap-types", fixtures.Default)
	dir := t.TempDir()
	parse := func(what string, b []byte, typ string) {
		t.Helper()
		prof, err := profile.ParseData(b)
		if err != nil || len(prof.Sample) == 0 || prof.SampleType[0].Type != typ {
			t.Errorf("%s: %v, %v", what, err, prof)
		}
	}
	for _, tc := range []struct {
		flags []string
		file  string
		typ   string
		said  string
	}{
		{nil, "g.pb.gz", "goroutine", "goroutines"},
		{[]string{"--heap"}, "h.pb.gz", "inuse_objects", "live objects"},
	} {
		out := filepath.Join(dir, tc.file)
		args := append(append([]string{"pprof"}, tc.flags...), "-o", out, c.Core, c.Binary)
		code, stdout, stderr := runBuilt(t, args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		if s := string(stdout); !strings.Contains(s, "wrote ") || !strings.Contains(s, tc.said) || !strings.Contains(s, "go tool pprof") {
			t.Errorf("%v said: %s", args, s)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		parse(tc.file, b, tc.typ)

		// -o - writes the same profile to stdout, and nothing else.
		args = append(append([]string{"pprof"}, tc.flags...), "-o", "-", c.Core, c.Binary)
		code, stdout, stderr = runBuilt(t, args...)
		if code != exitOK || stderr != "" {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		parse("stdout of -o -", stdout, tc.typ)
	}

	nonGo := fixturetest.MustCrash(t, "c-segv", fixtures.Default)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a core "), 100), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{c.Core, c.Binary}, exitUsage, "-o FILE is required"},
		{[]string{"-o", filepath.Join(dir, "x.pb.gz")}, exitUsage, "missing CORE"},
		{[]string{"--max-frames", "0", "-o", filepath.Join(dir, "x.pb.gz"), c.Core, c.Binary}, exitUsage, "--max-frames must be positive"},
		{[]string{"-o", dir, c.Core, c.Binary}, exitUsage, "is a directory"},
		{[]string{"-o", filepath.Join(dir, "no", "x.pb.gz"), c.Core, c.Binary}, exitUsage, "no directory"},
		{[]string{"-o", filepath.Join(dir, "x.pb.gz"), nonGo.Core, nonGo.Binary}, exitBadInput, "a pprof profile needs a Go process"},
		{[]string{"--heap", "-o", filepath.Join(dir, "x.pb.gz"), nonGo.Core, nonGo.Binary}, exitBadInput, "a pprof profile needs a Go process"},
		{[]string{"-o", filepath.Join(dir, "x.pb.gz"), filepath.Join(dir, "missing")}, exitBadInput, "missing"},
		{[]string{"-o", filepath.Join(dir, "x.pb.gz"), garbage}, exitBadInput, "garbage"},
	} {
		code, stdout, stderr := runBuilt(t, append([]string{"pprof"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || len(stdout) != 0 {
			t.Errorf("pprof %v: exit %d, stderr %q, %d bytes on stdout; want exit %d saying %q", tc.args, code, stderr, len(stdout), tc.code, tc.want)
		}
		for _, bad := range []string{"panic:", "goroutine 1 ["} {
			if strings.Contains(stderr, bad) {
				t.Errorf("pprof %v crashed: %s", tc.args, stderr)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.pb.gz")); err == nil {
		t.Error("a failed run left x.pb.gz")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// With stderr on a terminal, --progress=always shows the heap scan's
// spans and erases the line when done.
func TestPprofProgress(t *testing.T) {
	c := fixturetest.MustCrash(t, "go-heap-types", fixtures.Default)
	cmd := exec.Command(builtCommand(t), "pprof", "--heap", "--progress=always", "-o", filepath.Join(t.TempDir(), "h.pb.gz"), c.Core, c.Binary)
	out := stderrOnTerminal(t, cmd)
	if !strings.Contains(out, "\r\x1b[Kheap spans: 0/") || !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("stderr on a terminal: %q", out)
	}
}

// TestPprofInterrupted: SIGINT or SIGTERM at any moment leaves either
// nothing or the whole profile in the output directory, never the
// temporary file it is written to. The 100 000-goroutine profile takes
// long enough to write that some signals land while it is written.
func TestPprofInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("the 100 000-goroutine core takes a while to make")
	}
	c := fixturetest.MustCrash(t, "go-many-goroutines", fixtures.Default)
	bin := builtCommand(t)
	var interrupted, wrote int
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		for _, ms := range []int{50, 200, 400, 500, 600, 700, 800, 1000} {
			dir := t.TempDir()
			out := filepath.Join(dir, "g.pb.gz")
			cmd := exec.Command(bin, "pprof", "-o", out, c.Core, c.Binary)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(ms) * time.Millisecond)
			cmd.Process.Signal(sig)
			cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			// Before the output file exists the signal's default action
			// ends the process; after, the guard removes the file and
			// exits as a shell would report the signal.
			st, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			killed := code == 128+int(sig) || (st.Signaled() && st.Signal() == sig)
			ents, _ := os.ReadDir(dir)
			whole := false
			if len(ents) == 1 && ents[0].Name() == "g.pb.gz" {
				b, err := os.ReadFile(out)
				_, perr := profile.ParseData(b)
				whole = err == nil && perr == nil
			}
			switch {
			case killed && len(ents) == 0:
				interrupted++
			case whole && (code == exitOK || killed):
				// A signal between the rename and the end finds the
				// profile whole in place.
				wrote++
			default:
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("%v after %d ms: exit %d (%v), left %q", sig, ms, code, cmd.ProcessState, names)
			}
		}
	}
	t.Logf("%d runs interrupted, %d finished", interrupted, wrote)
	if interrupted == 0 {
		t.Error("no signal interrupted a run: the test proves nothing")
	}
}
