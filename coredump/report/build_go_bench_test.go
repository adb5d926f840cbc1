package report

import (
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// BenchmarkBuild100k builds the full report (--all: every goroutine's
// stack, bucketed) of the 100000-goroutine core, from opening the core on.
func BenchmarkBuild100k(b *testing.B) {
	c := fixturetest.MustCrash(b, "go-many-goroutines", fixtures.Default)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
		if err != nil {
			b.Fatal(err)
		}
		r := Build(p, Options{All: true})
		if r.Goroutines == nil || r.Goroutines.Total < 100000 {
			b.Fatalf("goroutines %+v", r.Goroutines)
		}
		p.Close()
	}
}
