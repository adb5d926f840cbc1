package report_test

import (
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

func notesOf(t *testing.T, name string, v fixtures.Variant) []string {
	t.Helper()
	c := fixturetest.MustCrash(t, name, v)
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

// A thread C created runs from libc's start_thread, a local function that
// only libc's separate debug file names (Debian's libc6-dbg): the crash
// stack of cgo-foreign-crash ends in it instead of in "libc.so.6+0x...",
// and the report says which debug file named it.
func TestLibraryFramesFromDebugFile(t *testing.T) {
	c := fixturetest.MustCrash(t, "cgo-foreign-crash", fixtures.Default)
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	libc := p.ImageByName("libc.so")
	if libc == nil || libc.DebugFile() == "" {
		t.Skip("no separate debug file for libc on this machine (Debian package libc6-dbg)")
	}
	r := report.Build(p, report.Options{})
	if r.Crash == nil {
		t.Fatal("no crash")
	}
	var names []string
	found := false
	for _, f := range r.Crash.Frames {
		names = append(names, f.Function)
		found = found || (f.Function == "start_thread" && strings.HasPrefix(f.Module, "libc.so"))
	}
	if !found || names[0] != c.Fixture.Spec.Expect["fault_function"] {
		t.Errorf("crash stack %q: want fill_slot first and libc's start_thread", names)
	}
	for _, im := range r.Process.Images {
		if strings.Contains(im.Path, "libc.so") && im.DebugFile != libc.DebugFile() {
			t.Errorf("report's libc image: debug file %q, want %q", im.DebugFile, libc.DebugFile())
		}
	}
}
