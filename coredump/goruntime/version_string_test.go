package goruntime

import "testing"

// validGoVersion accepts what runtime.buildVersion holds on release and
// development toolchains, and nothing that is raw bytes read from a wrong
// address.
func TestValidGoVersion(t *testing.T) {
	for v, want := range map[string]bool{
		"go1.26.8": true, "go1.22.12": true, "go1.23rc1": true, "go1.21.0 X:loopvar": true,
		"devel go1.27-4b5c1a2e Tue Dec 1 10:00:00 2026 +0000": true,
		"":                 false,
		"go2.0":            false,
		"\x8bD$\x08H\x89":  false,
		"go1.26.8\x00\x00": false,
		"1.26.8":           false,
	} {
		if got := validGoVersion(v); got != want {
			t.Errorf("validGoVersion(%q) = %v, want %v", v, got, want)
		}
	}
}
