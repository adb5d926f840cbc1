package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
)

func crash(t *testing.T, name string) *fixtures.Crash {
	t.Helper()
	f, err := fixtures.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runCLI runs the command in-process and returns exit code and output.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// goroutineHeader is how a Go traceback starts a goroutine's stack.
var goroutineHeader = regexp.MustCompile(`goroutine \d+ \[`)

func TestExitCodes(t *testing.T) {
	c := crash(t, "go-nil-map")
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	for _, tc := range []struct {
		args []string
		code int
		in   string // expected in stderr
	}{
		{[]string{"threads"}, exitUsage, "missing CORE"},
		{[]string{"goroutine", c.Core}, exitUsage, "did you mean goroutines?"},
		{[]string{"--sysroot", filepath.Join(t.TempDir(), "nope"), c.Core}, exitUsage, "--sysroot"},
		{[]string{"--sysroot", c.Binary, c.Core}, exitUsage, "not a directory"},
		{[]string{"--json", "--markdown", c.Core}, exitUsage, "exclude each other"},
		{[]string{"--bogus"}, exitUsage, "unknown flag"},
		{[]string{c.Core, c.Binary, "extra"}, exitUsage, "too many arguments"},
		{[]string{"--color", "purple", c.Core}, exitUsage, "--color"},
		{[]string{empty}, exitBadInput, "the file is empty"},
		{[]string{c.Binary, c.Binary}, exitBadInput, "not a core dump"},
		{[]string{filepath.Join(t.TempDir(), "nope")}, exitBadInput, "no such file"},
		{[]string{t.TempDir()}, exitBadInput, "not a regular file"},
		{[]string{c.Core, crash(t, "cgo-null-write").Binary}, exitBadInput, "--force"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.in) {
			t.Errorf("coreexplain %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.in)
		}
		if goroutineHeader.MatchString(stderr) || strings.Contains(stderr, "panic:") {
			t.Errorf("coreexplain %q: a panic escaped: %s", tc.args, stderr)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	code, out, _ := runCLI("--help")
	if code != exitOK || !strings.Contains(out, "usage: coreexplain [explain] [flags] CORE [BINARY]") || !strings.Contains(out, "examples:") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	for name := range commands {
		if name == "explain" {
			continue
		}
		if !strings.Contains(out, "\n  "+name+" ") {
			t.Errorf("--help does not list subcommand %s", name)
		}
		if len(commands[name].examples) == 0 {
			t.Errorf("subcommand %s has no examples in its help", name)
		}
		code, sub, _ := runCLI(name, "--help")
		if code != exitOK || !strings.Contains(sub, "usage: coreexplain "+name) {
			t.Errorf("%s --help: exit %d\n%s", name, code, sub)
		}
	}
	code, out, _ = runCLI("--version")
	if code != exitOK || !strings.HasPrefix(out, "coreexplain ") {
		t.Errorf("--version: exit %d %q", code, out)
	}
}

func TestJSONReport(t *testing.T) {
	c := crash(t, "cgo-null-write")
	code, out, stderr := runCLI("--json", c.Core, c.Binary)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	if r.Schema != report.Schema || r.Process.PID == 0 || len(r.Threads) == 0 || r.Signature == "" {
		t.Errorf("report: schema %q pid %d threads %d signature %q", r.Schema, r.Process.PID, len(r.Threads), r.Signature)
	}
	// Addresses are strings, never numbers.
	var raw map[string]any
	json.Unmarshal([]byte(out), &raw)
	th := raw["threads"].([]any)[0].(map[string]any)
	if s, ok := th["pc"].(string); !ok || !strings.HasPrefix(s, "0x") {
		t.Errorf("thread pc in JSON: %#v", th["pc"])
	}
}
