package coredump_test

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// TestResidentBounded reads every byte the 100000-goroutine core holds
// and checks that the mapped core's pages do not pile up in the resident
// set: reads release them past the budget.
func TestResidentBounded(t *testing.T) {
	c := fixturetest.MustCrash(t, "go-many-goroutines", fixtures.Default)
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	base := rssFile(t)
	buf := make([]byte, 1<<20)
	var read, peak uint64
	for _, m := range p.Mappings {
		for a := m.Start; a < m.Start+m.Dumped; a += uint64(len(buf)) {
			n, _ := p.ReadMemory(buf[:min(uint64(len(buf)), m.Start+m.Dumped-a)], a)
			read += uint64(n)
			if read%(16<<20) < 1<<20 {
				peak = max(peak, rssFile(t))
			}
		}
	}
	if read < 256<<20 {
		t.Fatalf("read %d MiB of the core, want the whole core (> 256 MiB)", read>>20)
	}
	// The budget, plus pages of the test binary and libraries touched
	// meanwhile.
	if grew := int64(peak) - int64(base); grew > coredump.ResidentBudget+32<<20 {
		t.Errorf("reading %d MiB of the core grew the file-backed resident set by %d MiB, want at most the %d MiB budget", read>>20, grew>>20, coredump.ResidentBudget>>20)
	}
}

// rssFile is the process's file-backed resident set (RssFile) in bytes.
func rssFile(t *testing.T) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "RssFile:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}
