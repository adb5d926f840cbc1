package goruntime

import (
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
)

// TestVersionTables checks every fact versions.go states without reading
// the binary against the DWARF and memory of real binaries built with
// each supported toolchain, so that a table cannot drift from a release.
func TestVersionTables(t *testing.T) {
	forEachVariant(t, "cgo-null-write", func(t *testing.T, l *loaded) {
		lay := l.rt.Binary.Layout
		if !lay.FromDWARF {
			t.Fatal("the fixture has no DWARF")
		}
		// moduledata's first fields.
		for field, off := range moduledataPrefix {
			got, err := lay.Off("runtime.moduledata", field)
			if err != nil || got != off {
				t.Errorf("moduledata.%s at %d (%v), table says %d", field, got, err, off)
			}
		}
		// package coredump's copy of the text field's offset, which it
		// cannot import from here.
		if got := moduledataPrefix["text"]; got != coredump.ModuledataTextOffset {
			t.Errorf("coredump.ModuledataTextOffset is %d, moduledataPrefix says %d", coredump.ModuledataTextOffset, got)
		}
		// Function flags.
		top, spw, asm := defaultFuncFlags()
		for name, want := range map[string]uint8{"internal/abi.FuncFlagTopFrame": top, "internal/abi.FuncFlagSPWrite": spw, "internal/abi.FuncFlagAsm": asm} {
			if v, ok := lay.Const(name); !ok || uint8(v) != want {
				t.Errorf("%s = %d (%v), table says %d", name, v, ok, want)
			}
		}
		// Goroutine states: constants and names.
		fb := gStatusFallback(l.rt.Version)
		for name, want := range gStatusConsts {
			if v, ok := lay.Const("runtime." + name); !ok || uint32(v) != want {
				t.Errorf("runtime.%s = %d (%v), table says %d", name, v, ok, want)
			}
		}
		for name, since := range gStatusConstsSince {
			v, ok := lay.Const("runtime." + name)
			if ok != l.rt.Version.AtLeast(since.minor) || ok && uint32(v) != since.value {
				t.Errorf("runtime.%s = %d (%v) in %s, table says %d from 1.%d", name, v, ok, l.rt.Version, since.value, since.minor)
			}
		}
		names := l.rt.readStringArray("runtime.gStatusStrings", 64)
		if names == nil {
			t.Fatal("runtime.gStatusStrings unreadable")
		}
		for i, n := range names {
			if n != "" && fb[uint32(i)] != n {
				t.Errorf("state %d is %q, fallback table says %q", i, n, fb[uint32(i)])
			}
		}
		// Bounds error formats (in a program that has bounds checks).
		bl := loadFixture(t, "go-index-range", l.crash.Variant)
		for sym, table := range map[string][]string{"runtime.boundsErrorFmts": boundsErrorFmtFallback, "runtime.boundsNegErrorFmts": boundsNegErrorFmtFallback} {
			got := bl.rt.readStringArray(sym, 64)
			if len(got) != len(table) {
				t.Errorf("%s has %d formats, table %d", sym, len(got), len(table))
				continue
			}
			for i := range got {
				if got[i] != table[i] {
					t.Errorf("%s[%d] = %q, table says %q", sym, i, got[i], table[i])
				}
			}
		}
		// Type descriptors: abi.Type is 48 bytes with Kind_ at 23.
		s, err := lay.Struct("internal/abi.Type")
		if err != nil || s.Size != 48 {
			t.Errorf("internal/abi.Type: %v, size %d", err, s.Size)
		}
		for _, name := range []string{"internal/abi.SwissMapType", "internal/abi.MapType", "internal/abi.OldMapType"} {
			if ms, err := lay.Struct(name); err == nil && name != "internal/abi.OldMapType" && l.rt.Version.AtLeast(24) {
				if ms.Size-48 != mapTypeSize(l.rt.Version) {
					t.Errorf("%s: %d bytes after abi.Type, table says %d", name, ms.Size-48, mapTypeSize(l.rt.Version))
				}
			}
		}
		// The throw closures exist.
		for _, name := range throwClosures {
			if _, ok := l.rt.Funcs.FuncByName(name); !ok && name == "runtime.throw.func1" {
				t.Errorf("%s not in the pclntab", name)
			}
		}
		// pcHeader.textStart: present before 1.26, zero after.
		img := l.rt.Binary.Image
		_, data, err := img.Section(".gopclntab")
		if err != nil {
			t.Fatal(err)
		}
		h, err := parsePclntabHeader(data)
		if err != nil {
			t.Fatal(err)
		}
		if (h.textStart != 0) != pcHeaderHasTextStart(l.rt.Version) {
			t.Errorf("pcHeader.textStart = %#x in %s, table says present=%v", h.textStart, l.rt.Version, pcHeaderHasTextStart(l.rt.Version))
		}
	})
}

// forEachVariant runs fn on one fixture for every toolchain.
func forEachVariant(t *testing.T, name string, fn func(t *testing.T, l *loaded)) {
	for _, v := range variants() {
		t.Run(v.String(), func(t *testing.T) { fn(t, loadFixture(t, name, v)) })
	}
}

// TestDiscoverGlobals checks the globals found in code (for binaries
// without a symbol table) against the symbol table of binaries that have
// one: the state-name tables found from their contents, and the globals
// Runtime.global takes from the Binary's code patterns.
func TestDiscoverGlobals(t *testing.T) {
	for _, name := range []string{"cgo-null-write", "go-panic-wrapped"} {
		forEachVariant(t, name, func(t *testing.T, l *loaded) {
			r := l.rt
			for _, g := range []string{"runtime.gStatusStrings", "runtime.waitReasonStrings"} {
				s, ok := r.Binary.Image.LookupSymbol(g)
				if !ok {
					t.Errorf("%s not in the symbol table", g)
					continue
				}
				r.found = nil
				addr, size, ok := r.discover(g)
				if !ok || addr != s.Addr || size != s.Size {
					t.Errorf("%s: found %#x+%d (%v), the symbol table says %#x+%d", g, addr, size, ok, s.Addr, s.Size)
				}
			}
			for _, g := range []string{"runtime.allgs", "runtime.allglen", "runtime.allm", "runtime.printBacklog",
				"runtime.printBacklogIndex", "runtime.argslice"} {
				s, ok := r.Binary.Image.LookupSymbol(g)
				if !ok {
					t.Errorf("%s not in the symbol table", g)
					continue
				}
				sg, ok := r.Binary.StrippedGlobal(g)
				if !ok || sg.Addr != s.Addr || sg.Size != s.Size {
					t.Errorf("%s: found %#x+%d (%v), the symbol table says %#x+%d", g, sg.Addr, sg.Size, ok, s.Addr, s.Size)
				}
			}
		})
	}
}
