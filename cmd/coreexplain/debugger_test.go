package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDebuggerUsage: bad arguments to dlv and gdb are usage errors, found
// before any debugger is looked for or any target touched.
func TestDebuggerUsage(t *testing.T) {
	t.Setenv("DLV", "/nonexistent")
	for _, tc := range []struct {
		args []string
		code int
		in   string
	}{
		{[]string{"dlv"}, exitUsage, "missing CORE"},
		{[]string{"gdb", "attach"}, exitUsage, "missing PID"},
		{[]string{"dlv", "attach", "x"}, exitUsage, `"x" is not a process ID`},
		{[]string{"dlv", "attach", "1", "2"}, exitUsage, "too many arguments"},
		{[]string{"dlv", "--init", filepath.Join(t.TempDir(), "nope"), "core"}, exitUsage, "--init"},
		{[]string{"gdb", "--progress", "loud", "core"}, exitUsage, "--progress"},
		{[]string{"dlv", "core"}, exitBadInput, "go install github.com/go-delve/delve/cmd/dlv@latest"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.in) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.in)
		}
	}
}

func TestGoOlderThan(t *testing.T) {
	for v, want := range map[string]bool{
		"go1.22.12": true, "go1.24": true, "go1.25.0": false, "go1.26rc1": false, "go1.9": true,
		"": false, "devel +abc": false, "go1.": false,
	} {
		if got := goOlderThan(v, 25); got != want {
			t.Errorf("goOlderThan(%q, 25) = %v", v, got)
		}
	}
}

// TestPruneSessions: a stale session directory no coreexplain holds is
// removed; one a running session holds, or a fresh one, stays.
func TestPruneSessions(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, age time.Duration) string {
		d := filepath.Join(root, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "report.json"), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
		return d
	}
	stale := mk("dlv-1-stale", 3*24*time.Hour)
	held := mk("dlv-2-held", 3*24*time.Hour)
	fresh := mk("gdb-3-fresh", time.Minute)
	unlock, err := lockSession(held)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	old := time.Now().Add(-3 * 24 * time.Hour)
	os.Chtimes(held, old, old) // the lock file made it fresh again
	pruneSessions(root, time.Now())
	for d, keep := range map[string]bool{stale: false, held: true, fresh: true} {
		if _, err := os.Stat(d); (err == nil) != keep {
			t.Errorf("%s: kept %v, want %v", filepath.Base(d), err == nil, keep)
		}
	}
}
