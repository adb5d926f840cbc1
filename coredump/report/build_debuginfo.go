package report

import (
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

// addDebugInfoNotes says what a report on an executable without DWARF
// (-ldflags=-w) or without a symbol table (-ldflags=-s, strip) cannot show,
// and where the answers it does show come from instead.
func addDebugInfoNotes(p *coredump.Process, r *Report) {
	if p.Exe == nil || !p.Exe.Status.Usable() {
		return
	}
	f, err := p.Exe.ELF()
	if err != nil {
		return
	}
	hasDWARF := f.Section(".debug_info") != nil || f.Section(".zdebug_info") != nil
	hasSymtab := f.Section(".symtab") != nil
	isGo := f.Section(".gopclntab") != nil || f.Section(".go.buildinfo") != nil
	var notes []string
	switch {
	case isGo && !hasDWARF:
		n := "the executable has no DWARF (built with -ldflags=-w): local variables, arguments and the type and field names of faulting values are unavailable"
		if b, err := goruntime.LoadBinary(p.Exe); err != nil {
			n += fmt.Sprintf("; the Go runtime's structures cannot be read (%v)", err)
		} else if !b.Layout.FromDWARF {
			n += fmt.Sprintf("; Go runtime structures are read with the built-in layout of Go 1.%d, checked against DWARF of that release", b.Version.Minor)
		}
		notes = append(notes, n)
	case !isGo && !hasDWARF:
		notes = append(notes, "the executable has no DWARF: source lines of its C frames are unavailable")
	}
	switch {
	case isGo && !hasSymtab:
		notes = append(notes, "the executable has no symbol table (built with -ldflags=-s): function names come from .gopclntab; runtime globals are located through the code that uses them")
	case !isGo && !hasSymtab:
		notes = append(notes, "the executable has no symbol table (stripped): only its exported functions have names")
	}
	r.Notes = append(r.Notes, notes...)
}
