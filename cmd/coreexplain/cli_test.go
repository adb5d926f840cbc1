package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/report"
)

// TestDemo runs the README's first command the way a newcomer does, on the
// built binary: the demo builds and crashes go-nil-field and explains it.
// The demo once exited 1 on flags it never registered; this is the test
// that was missing.
func TestDemo(t *testing.T) {
	c := crash(t, "go-nil-field") // the demo's fixture: its core is then cached
	bin := builtCommand(t)
	out, errb, code := runIn(t, t.TempDir(), bin, "demo")
	if code != exitOK {
		t.Fatalf("demo: exit %d\n%s", code, errb)
	}
	// The text wraps at 80 columns: compare with the line breaks folded.
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"findings 1. [nil-deref, high confidence] Nil pointer dereference in main.(*Server).maxIdle",
		"Limits.MaxIdle", "*main.Config",
		fmt.Sprintf("at address %#x", c.Oracle.Addr),
		fmt.Sprintf("goroutine %d", c.Oracle.Goroutine),
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("demo's report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errb, "demo: go-nil-field") {
		t.Errorf("demo does not say what it runs:\n%s", errb)
	}

	out, errb, code = runIn(t, t.TempDir(), bin, "demo", "--json")
	if code != exitOK {
		t.Fatalf("demo --json: exit %d\n%s", code, errb)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("demo --json: %v\n%s", err, out)
	}
	if len(r.Findings) == 0 || r.Findings[0].Class != "nil-deref" || r.Signal == nil || r.Signal.Addr == nil || uint64(*r.Signal.Addr) != c.Oracle.Addr {
		t.Errorf("demo --json: findings %+v, signal %+v; want nil-deref first at %#x", r.Findings, r.Signal, c.Oracle.Addr)
	}

	out, _, code = runIn(t, t.TempDir(), bin, "demo", "--list")
	if code != exitOK || !strings.Contains(out, "go-nil-field ") || !strings.Contains(out, "cgo-null-write ") {
		t.Errorf("demo --list: exit %d\n%s", code, out)
	}
	if _, errb, code := runIn(t, t.TempDir(), bin, "demo", "no-such-fixture"); code != exitBadInput || !strings.Contains(errb, "no-such-fixture") {
		t.Errorf("demo no-such-fixture: exit %d %q", code, errb)
	}
}

// runIn runs the built binary in dir and returns stdout, stderr and the
// exit code.
func runIn(t *testing.T, dir, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return out.String(), errb.String(), code
}

// TestExplainArgs: explain by name, BINARY CORE in the order of dlv and
// gdb, and no arguments: each gives the same report as the plain form.
func TestExplainArgs(t *testing.T) {
	c := crash(t, "go-nil-map")
	code, want, stderr := runCLI("--json", c.Core, c.Binary)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, args := range [][]string{
		{"explain", "--json", c.Core, c.Binary},
		{"--json", c.Binary, c.Core},
		{"explain", c.Binary, "--json", c.Core},
	} {
		code, out, stderr := runCLI(args...)
		if code != exitOK || out != want {
			t.Errorf("coreexplain %q: exit %d, stderr %q, report differs: %v", args, code, stderr, out != want)
		}
		if stderr != "" {
			t.Errorf("coreexplain %q printed on stderr: %q", args, stderr)
		}
	}
	for _, args := range [][]string{nil, {"explain"}} {
		code, out, _ := runCLI(args...)
		if code != exitOK || !strings.HasPrefix(out, "usage: coreexplain [explain] [flags] CORE [BINARY]") || !strings.Contains(out, "subcommands:") {
			t.Errorf("coreexplain %q: exit %d\n%s", args, code, out)
		}
	}
	// Two binaries stay as given: the first is named as the culprit.
	if code, _, stderr := runCLI(c.Binary, c.Binary); code != exitBadInput || !strings.Contains(stderr, "not a core dump") {
		t.Errorf("coreexplain BINARY BINARY: exit %d %q", code, stderr)
	}
}

// TestVersion: version and --version name the module version, the
// revision the binary was built from and the toolchain, read from the
// build information the go command stamps. The test builds with
// -buildvcs=true and compares with git.
func TestVersion(t *testing.T) {
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "coreexplain")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	gov, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, errb, code := runIn(t, t.TempDir(), bin, args...)
		if code != exitOK {
			t.Fatalf("%q: exit %d %s", args, code, errb)
		}
		for _, want := range []string{"coreexplain ", "(rev " + string(rev[:12]), strings.TrimSpace(string(gov)) + " linux/"} {
			if !strings.Contains(out, want) {
				t.Errorf("coreexplain %q = %q, want %q in it", args, out, want)
			}
		}
		if strings.Count(out, "\n") != 1 {
			t.Errorf("coreexplain %q: not one line: %q", args, out)
		}
	}
	if code, _, stderr := runCLI("version", "extra"); code != exitUsage || !strings.Contains(stderr, "no arguments") {
		t.Errorf("version extra: exit %d %q", code, stderr)
	}
}

// bashCompletion is the bash-completion package's library, which the bash
// scripts cobra writes call into (_get_comp_words_by_ref); .ci/run
// installs it.
const bashCompletion = "/usr/share/bash-completion/bash_completion"

// TestCompletion loads the bash completion script into a real bash and
// completes a subcommand, a flag and an argument through it.
func TestCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	if _, err := os.Stat(bashCompletion); err != nil {
		t.Skipf("bash-completion is not installed (Debian package bash-completion): %v", err)
	}
	bin := builtCommand(t)
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"coreexplain", "gorout"}, "goroutines"},
		{[]string{"coreexplain", "pprof", "--he"}, "--heap"},
		{[]string{"coreexplain", "completion", "fi"}, "fish"},
	} {
		script := fmt.Sprintf(`source %s || exit 3
source <(coreexplain completion bash) || exit 3
COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
__start_coreexplain coreexplain "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
printf '%%s\n' "${COMPREPLY[@]}"`, bashCompletion, strings.Join(tc.words, " "), len(tc.words)-1)
		cmd := exec.Command(bash, "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", tc.words, err, out)
		}
		if !strings.Contains("\n"+string(out), "\n"+tc.want) {
			t.Errorf("bash completion of %q = %q, want %s", tc.words, out, tc.want)
		}
	}
	for _, sh := range []string{"zsh", "fish", "powershell"} {
		if code, out, stderr := runCLI("completion", sh); code != exitOK || !strings.Contains(out, "coreexplain") {
			t.Errorf("completion %s: exit %d %q", sh, code, stderr)
		}
	}
	if code, _, stderr := runCLI("completion", "tcsh"); code != exitUsage || !strings.Contains(stderr, "unknown shell") {
		t.Errorf("completion tcsh: exit %d %q", code, stderr)
	}
}

// TestBinaryDoesNotLinkTesting: the shipped command must not carry package
// testing (its flags and its code); the demo's path to the fixtures once
// pulled it in. Test helpers live in fixtures/fixturetest.
func TestBinaryDoesNotLinkTesting(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "testing" || strings.HasSuffix(p, "/fixturetest") {
			t.Errorf("coreexplain links %s", p)
		}
	}
}
