package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// crossTargets are the systems a Linux core is read on besides the one it
// was written on: a Mac (either architecture) and Linux on the other
// architecture.
var crossTargets = []struct{ goos, goarch string }{
	{"darwin", "arm64"},
	{"darwin", "amd64"},
	{"linux", "arm64"},
}

// TestCrossBuild builds coreexplain for every cross target and vets the
// whole module (tests included) for it, so that no Linux-only call creeps
// into the analysis of a core.
func TestCrossBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiling the module takes minutes")
	}
	root := moduleRoot(t)
	out := t.TempDir()
	for _, tg := range crossTargets {
		t.Run(tg.goos+"-"+tg.goarch, func(t *testing.T) {
			env := append(os.Environ(), "GOOS="+tg.goos, "GOARCH="+tg.goarch, "CGO_ENABLED=0")
			for _, args := range [][]string{
				{"build", "-o", filepath.Join(out, "coreexplain-"+tg.goos+"-"+tg.goarch), "./cmd/coreexplain"},
				{"vet", "./..."},
			} {
				cmd := exec.Command("go", args...)
				cmd.Dir, cmd.Env = root, env
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("GOOS=%s GOARCH=%s go %s: %v\n%s", tg.goos, tg.goarch, strings.Join(args, " "), err, b)
				}
			}
		})
	}
}

// moduleRoot is the directory of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		t.Fatal("not inside the module")
	}
	return filepath.Dir(mod)
}

// On a system without ptrace the live commands exit 2 with one line that
// says why, before touching their arguments; reading a core is not one of
// them.
func TestLinuxOnlyCommands(t *testing.T) {
	defer func(goos string) { thisOS = goos }(thisOS)
	thisOS = "darwin"
	for _, args := range [][]string{{"attach", "1"}, {"dump", "1"}, {"run", "--", "true"}, {"demo"}} {
		code, stdout, stderr := runCLI(args...)
		want := "coreexplain: " + args[0] + " needs Linux (ptrace)\n"
		if code != exitBadInput || stderr != want || stdout != "" {
			t.Errorf("coreexplain %q on darwin: exit %d, stdout %q, stderr %q; want exit %d and %q", args, code, stdout, stderr, exitBadInput, want)
		}
	}
	for name := range needsLinux {
		if commands[name] == nil {
			t.Errorf("needsLinux names %q, which is no subcommand", name)
		}
	}
	// Reading a core is what a Mac is for.
	c := crash(t, "go-nil-field")
	if code, _, stderr := runCLI("--json", c.Core, c.Binary); code != exitOK {
		t.Errorf("explaining a core on darwin: exit %d, stderr %q", code, stderr)
	}
	// --help still works: it says what the command would do.
	if code, out, _ := runCLI("attach", "--help"); code != exitOK || !strings.Contains(out, "usage: coreexplain attach") {
		t.Errorf("attach --help on darwin: exit %d\n%s", code, out)
	}
}
