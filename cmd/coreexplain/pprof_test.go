package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/google/pprof/profile"
)

// coreexplain pprof writes profiles go tool pprof reads; bad requests
// fail with a usage or input error and write nothing.
func TestPprofCommand(t *testing.T) {
	c := fixtures.MustCrash(t, "go-heap-types", fixtures.Default)
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		file string
		typ  string
	}{
		{[]string{"-o", filepath.Join(dir, "g.pb.gz")}, "g.pb.gz", "goroutine"},
		{[]string{"--heap", "-o", filepath.Join(dir, "h.pb.gz")}, "h.pb.gz", "inuse_objects"},
	} {
		code, out, stderr := runCLI(append(append([]string{"pprof"}, tc.args...), c.Core, c.Binary)...)
		if code != exitOK {
			t.Fatalf("pprof %v: exit %d: %s", tc.args, code, stderr)
		}
		if !strings.Contains(out, "wrote ") || !strings.Contains(out, "go tool pprof") {
			t.Errorf("pprof %v said: %s", tc.args, out)
		}
		f, err := os.Open(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		prof, err := profile.Parse(f)
		f.Close()
		if err != nil || len(prof.Sample) == 0 || prof.SampleType[0].Type != tc.typ {
			t.Errorf("%s: %v, %v", tc.file, err, prof)
		}
	}

	nonGo := fixtures.MustCrash(t, "c-segv", fixtures.Default)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--max-frames", "0", c.Core, c.Binary}, exitUsage, "--max-frames must be positive"},
		{[]string{"-o", dir, c.Core, c.Binary}, exitUsage, "is a directory"},
		{[]string{"-o", filepath.Join(dir, "x.pb.gz"), nonGo.Core, nonGo.Binary}, exitBadInput, "a pprof profile needs a Go process"},
		{[]string{"-o", filepath.Join(dir, "y.pb.gz"), filepath.Join(dir, "missing")}, exitBadInput, "missing"},
	} {
		code, _, stderr := runCLI(append([]string{"pprof"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("pprof %v: exit %d, %q; want exit %d saying %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	for _, f := range []string{"x.pb.gz", "y.pb.gz"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("a failed run left %s", f)
		}
	}
}
