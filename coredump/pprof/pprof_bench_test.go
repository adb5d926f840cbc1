package pprof_test

import (
	"io"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/coredump/pprof"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
	"github.com/google/pprof/profile"
)

// benchProfile opens the fixture's core and, b.N times, loads the runtime
// view from scratch, builds a profile with build and encodes it, as
// coreexplain pprof does.
func benchProfile(b *testing.B, name string, build func(*goruntime.Runtime) (*profile.Profile, error)) {
	c := fixturetest.MustCrash(b, name, fixtures.Default)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
		if err != nil {
			b.Fatal(err)
		}
		r, err := goruntime.Load(p)
		if err != nil {
			b.Fatal(err)
		}
		prof, err := build(r)
		if err != nil {
			b.Fatal(err)
		}
		if err := prof.Write(io.Discard); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(prof.Sample)), "samples")
		p.Close()
	}
}

// BenchmarkGoroutineProfile100k: the goroutine profile of the
// 100000-goroutine core.
func BenchmarkGoroutineProfile100k(b *testing.B) {
	benchProfile(b, "go-many-goroutines", func(r *goruntime.Runtime) (*profile.Profile, error) {
		return pprof.Goroutines(r, pprof.GoroutineOptions{})
	})
}

// BenchmarkHeapProfile: the heap profile of go-big-heap (about 16 MiB of
// mixed objects; its 4g scale is measured with coreexplain itself).
func BenchmarkHeapProfile(b *testing.B) {
	benchProfile(b, "go-big-heap", pprof.Heap)
}
