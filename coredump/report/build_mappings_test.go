package report

import (
	"strconv"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
)

// TestMappings checks the report's memory map on a real core: it is sorted,
// covers the executable's text, and has no mapping over the C buffer the
// fixture freed (and the C library unmapped) before the crash.
func TestMappings(t *testing.T) {
	f, err := fixtures.Load("cgo-dangling-slice-field")
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ms := buildMappings(p)
	if len(ms) == 0 {
		t.Fatal("no mappings")
	}
	freed, err := strconv.ParseUint(c.Oracle.Facts["data"][0], 0, 64)
	if err != nil {
		t.Fatalf("FACT data: %v", err)
	}
	text := false
	for i, m := range ms {
		if m.Start >= m.End || i > 0 && m.Start < ms[i-1].End {
			t.Errorf("mapping %d %s-%s out of order or empty", i, m.Start, m.End)
		}
		if uint64(m.Start) <= freed && freed < uint64(m.End) {
			t.Errorf("freed buffer %#x lies in mapping %+v", freed, m)
		}
		if m.File == c.Binary && m.Perm == "r-x" {
			text = true
		}
	}
	if !text {
		t.Errorf("no r-x mapping of %s in %+v", c.Binary, ms)
	}
}
