package goruntime_test

import (
	"debug/elf"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/fixtures"
)

// The globals found from code alone equal the symbol table of unstripped
// builds, with every supported toolchain, pure Go and cgo; and a stripped
// build finds the same set.
func TestStrippedGlobals(t *testing.T) {
	for _, tc := range fallbackToolchains {
		name := tc
		if name == "" {
			name = "local"
		}
		t.Run(name, func(t *testing.T) {
			if tc != "" && testing.Short() {
				t.Skip("builds fixtures with older toolchains")
			}
			for _, fx := range []string{"go-nil-field", "cgo-null-write"} {
				c := fixtureCrash(t, fx, fixtures.Variant{Go: tc})
				p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				b, err := goruntime.LoadBinary(p.Exe)
				if err != nil {
					t.Fatal(err)
				}
				found, missed := goruntime.StrippedGlobals(p.Exe, b.Layout)
				ef, err := elf.Open(c.Binary)
				if err != nil {
					t.Fatal(err)
				}
				syms, err := ef.Symbols()
				ef.Close()
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]elf.Symbol{}
				for _, s := range syms {
					want[s.Name] = s
				}
				for n, err := range missed {
					t.Errorf("%s %s: %s not found: %v", name, fx, n, err)
				}
				for n, g := range found {
					s, ok := want[n]
					if !ok || s.Value != g.Addr || (g.Size != 0 && g.Size != s.Size) {
						t.Errorf("%s %s: %s at %#x (size %d, via %s); the symbol table says %#x (size %d)", name, fx, n, g.Addr, g.Size, g.Via, s.Value, s.Size)
					}
				}
				if len(found) < 13 {
					t.Errorf("%s %s: only %d globals found", name, fx, len(found))
				}
			}
		})
	}
}

// A stripped build (-s -w: no .symtab, no DWARF) finds every global; the
// values read through them from its core are what the program's state
// says: allglen equals len(allgs), allm's procid is a thread of the core,
// m0.g0 is g0, argc counts the arguments and iscgo says cgo.
func TestStrippedGlobalsOfStrippedBuild(t *testing.T) {
	for _, x := range []struct {
		fx string
		v  fixtures.Variant
	}{
		{"go-nil-field", fixtures.Variant{Strip: true}},
		{"cgo-null-write", fixtures.Variant{Strip: true}},
		{"cgo-null-write", fixtures.Variant{Strip: true, CC: "musl-gcc"}}, // static, externally linked
		{"go-nil-field", fixtures.Variant{Strip: true, PIE: true}},
	} {
		fx := x.fx + " " + x.v.String()
		c := fixtureCrash(t, x.fx, x.v)
		p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		b, err := goruntime.LoadBinary(p.Exe)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Stripped || b.Layout.FromDWARF {
			t.Fatalf("%s: stripped %v, DWARF %v", fx, b.Stripped, b.Layout.FromDWARF)
		}
		found, missed := goruntime.StrippedGlobals(p.Exe, b.Layout)
		for n, err := range missed {
			t.Errorf("%s: %s: %v", fx, n, err)
		}
		word := func(name string, off int64) uint64 {
			g, ok := found[name]
			if !ok {
				t.Fatalf("%s: %s not found", fx, name)
			}
			v, err := p.ReadUint64(g.Addr + p.Exe.Bias + uint64(off))
			if err != nil {
				t.Fatalf("%s: reading %s+%d: %v", fx, name, off, err)
			}
			return v
		}
		off := func(typ, field string) int64 {
			o, err := b.Layout.Off(typ, field)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
		if n, l := word("runtime.allglen", 0), word("runtime.allgs", 8); n == 0 || n != l {
			t.Errorf("%s: allglen %d, len(allgs) %d", fx, n, l)
		}
		m := word("runtime.allm", 0)
		procid, err := p.ReadUint64(m + uint64(off("runtime.m", "procid")))
		if err != nil || p.Thread(int(procid)) == nil {
			t.Errorf("%s: allm %#x has procid %d (%v), not a thread of the core", fx, m, procid, err)
		}
		if g0 := found["runtime.g0"].Addr + p.Exe.Bias; word("runtime.m0", off("runtime.m", "g0")) != g0 {
			t.Errorf("%s: m0.g0 is not g0 (%#x)", fx, g0)
		}
		argc := uint64(uint32(word("runtime.argc", 0)))
		if want := uint64(1 + len(c.Fixture.Spec.Args)); argc != want || word("runtime.argslice", 8) != want {
			t.Errorf("%s: argc %d, len(argslice) %d, want %d", fx, argc, word("runtime.argslice", 8), want)
		}
		if cgo := word("runtime.iscgo", 0)&0xff == 1; cgo != (c.Fixture.Spec.Lang == fixtures.LangCgo) {
			t.Errorf("%s: iscgo %v", fx, cgo)
		}
		if i := word("runtime.printBacklogIndex", 0); i >= 512 {
			t.Errorf("%s: printBacklogIndex %d", fx, i)
		}
		if mc := uint32(word("runtime.sched", off("runtime.schedt", "maxmcount"))); mc != 10000 {
			t.Errorf("%s: sched.maxmcount %d", fx, mc)
		}
	}
}
