package gobin_test

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/gobin"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

func fixturePclntab(t *testing.T) (*elf.File, []byte) {
	t.Helper()
	c := fixturetest.MustCrash(t, "go-nil-field", fixtures.Default)
	f, err := elf.Open(c.Binary)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	data, err := f.Section(".gopclntab").Data()
	if err != nil {
		t.Fatal(err)
	}
	return f, data
}

// The table of a real binary agrees with its symbol table.
func TestOpenELF(t *testing.T) {
	f, _ := fixturePclntab(t)
	tab, err := gobin.OpenELF(f)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value < tab.MinPC || s.Value >= tab.MaxPC || !strings.HasPrefix(s.Name, "main.") {
			continue
		}
		fn, ok := tab.FuncAt(s.Value)
		if !ok || fn.Entry != s.Value || fn.Name() != s.Name {
			t.Errorf("%s at %#x: table says %q at %#x (%v)", s.Name, s.Value, fn.Name(), fn.Entry, ok)
		}
		if by, ok := tab.FuncByName(s.Name); !ok || by.Entry != s.Value {
			t.Errorf("FuncByName(%s) = %#x, %v", s.Name, by.Entry, ok)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no main functions checked")
	}
}

// Every count and offset of the header that does not fit the section is an
// error naming the field's offset, before anything is sized from it.
func TestHostileHeader(t *testing.T) {
	_, data := fixturePclntab(t)
	for _, tc := range []struct {
		name  string
		off   int
		value uint64
	}{
		{"nfunc", 8, 0x1d22d3d4},
		{"nfunc", 8, 1 << 63},
		{"nfunc", 8, 0},
		{"nfiles", 16, 1 << 40},
		{"funcnametab offset", 32, 1 << 62},
		{"cutab offset", 40, 1},
		{"pclntable offset", 64, uint64(len(data)) + 1},
	} {
		bad := slices.Clone(data)
		binary.LittleEndian.PutUint64(bad[tc.off:], tc.value)
		_, err := gobin.NewTable(bad, 0x401000, nil)
		var fe *gobin.FormatError
		if !errors.As(err, &fe) || fe.Off != uint64(tc.off) {
			t.Errorf("%s = %#x: error %v, want a FormatError at offset %#x", tc.name, tc.value, err, tc.off)
		}
	}
	if _, err := gobin.NewTable(data[:gobin.HeaderSize-1], 0, nil); err == nil {
		t.Error("a truncated header parsed")
	}
}
