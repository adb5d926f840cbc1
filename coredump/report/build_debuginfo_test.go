package report_test

import (
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
)

func notesOf(t *testing.T, name string, v fixtures.Variant) []string {
	t.Helper()
	c := fixtures.MustCrash(t, name, v)
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	return report.Build(p, report.Options{}).Notes
}

func hasNote(notes []string, sub string) bool {
	for _, n := range notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

// A stripped Go build's report says what is unavailable without DWARF and
// symbols and where its runtime layout comes from; a full build's does not.
func TestStrippedBinaryNotes(t *testing.T) {
	s := notesOf(t, "go-nil-field", fixtures.Variant{Strip: true})
	if !hasNote(s, "no DWARF (built with -ldflags=-w): local variables") || !hasNote(s, "built-in layout of Go 1.") ||
		!hasNote(s, "no symbol table (built with -ldflags=-s)") {
		t.Errorf("stripped build's notes: %q", s)
	}
	if f := notesOf(t, "go-nil-field", fixtures.Default); hasNote(f, "no DWARF") || hasNote(f, "no symbol table") {
		t.Errorf("full build's notes: %q", f)
	}
}
