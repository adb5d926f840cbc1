//go:build !linux

package main

import (
	"os/exec"
	"testing"
)

// stderrOnTerminal opens its pseudo-terminal the Linux way (pts(4));
// elsewhere the tests that need one are skipped.
func stderrOnTerminal(t *testing.T, cmd *exec.Cmd) string {
	t.Skip("pseudo-terminal tests need Linux")
	return ""
}
