package dlvext_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/fixtures"
)

// TestDelveInitFile: the by-hand usage the README gives, `dlv core BIN CORE
// --init FILE` where FILE holds `source /full/path/dlvext/coreexplain.star`,
// from a directory that is not the repository. Delve reads an init file as
// commands, line by line; loading the helpers must print no error line, and
// the commands must then work.
func TestDelveInitFile(t *testing.T) {
	c := crash(t, "go-nil-field", fixtures.Default)
	buildTools(t)
	dir := t.TempDir()
	init := filepath.Join(dir, "init")
	if err := os.WriteFile(init, []byte("source "+helper(t, "coreexplain.star")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.dlv, "core", c.Binary, c.Core,
		"--init", init, "--allow-non-terminal-interactive=true")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("gm\nexit\n")
	cmd.Env = append(cmd.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "TERM=dumb")
	b, err := cmd.CombinedOutput()
	out := ansi.ReplaceAllString(string(b), "")
	if err != nil {
		t.Fatalf("dlv: %v\n%s", err, out)
	}
	for _, bad := range []string{"command not available", "Command failed", "Error executing init file", "(no "} {
		if strings.Contains(out, bad) {
			t.Errorf("the init file printed %q:\n%s", bad, out)
		}
	}
	// Commands typed on stdin echo after the prompt.
	checkCrashingM(t, "gm after --init", strings.ReplaceAll(out, "(dlv) ", ""), c)
}
