package report

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// TestHostileNfunc: a binary whose .gopclntab claims 0x1d22d3d4 functions
// (the header's nfunc, the 8 bytes at offset 8) once made the C runtime
// view's fallback Go-function lookup allocate about 47 GB and die out of
// memory. Every count of the table is now checked against the section
// before anything is sized from it: the report says the table is bad, and
// building it allocates little.
func TestHostileNfunc(t *testing.T) {
	c := fixturetest.MustCrash(t, "go-nil-field", fixtures.Default)
	data, err := os.ReadFile(c.Binary)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(c.Binary)
	if err != nil {
		t.Fatal(err)
	}
	sec := f.Section(".gopclntab")
	f.Close()
	if sec == nil {
		t.Fatal("the fixture has no .gopclntab")
	}
	binary.LittleEndian.PutUint64(data[sec.Offset+8:], 0x1d22d3d4)
	bad := filepath.Join(t.TempDir(), filepath.Base(c.Binary))
	if err := os.WriteFile(bad, data, 0o755); err != nil {
		t.Fatal(err)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := coredump.Open(c.Core, bad, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := Build(p, Options{})
	runtime.ReadMemStats(&after)

	const limit = 64 << 20
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("opening the core and building the report allocated %d bytes in all", alloc)
	if alloc > limit {
		t.Errorf("allocated %d bytes, more than %d", alloc, limit)
	}
	said := false
	for _, n := range r.Notes {
		if strings.Contains(n, ".gopclntab") && strings.Contains(n, "nfunc 488821716") && strings.Contains(n, "offset 0x8") {
			said = true
		}
	}
	if !said {
		t.Errorf("no note names the bad nfunc; notes: %q", r.Notes)
	}
}
