package goruntime

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/go-delve/delve/pkg/proc"
)

const manyFixture = "go-many-goroutines"

// TestManyGoroutines checks the 100000-goroutine core: every goroutine
// listed, unwound to its start and grouped into the 32 stacks the program
// made, each with its share.
func TestManyGoroutines(t *testing.T) {
	l := loadFixture(t, manyFixture, fixtures.Default)
	var parked int
	fmt.Sscan(l.crash.Oracle.Facts["parked"][0], &parked)
	buckets := l.rt.Buckets(0)
	user := 0
	for _, b := range buckets {
		if b.Err != nil {
			t.Errorf("bucket [%s] of %d: %v", b.State, len(b.Goroutines), b.Err)
		}
		top := b.Frames[len(b.Frames)-1]
		if top.Func != "runtime.goexit" {
			t.Errorf("bucket [%s] does not unwind to runtime.goexit: ends in %s", b.State, top.Func)
		}
		depth := 0
		for _, f := range b.Frames {
			if f.Func == "main.descend" {
				depth++
			}
		}
		if depth == 0 {
			continue
		}
		user++
		if len(b.Goroutines) != parked/32 {
			t.Errorf("bucket [%s] at depth %d holds %d goroutines, want %d", b.State, depth, len(b.Goroutines), parked/32)
		}
		if depth != 1 && depth != 8 && depth != 16 && depth != 32 {
			t.Errorf("bucket [%s]: recursion depth %d", b.State, depth)
		}
		if b.CreatedBy == nil || b.CreatedBy.Func != "main.main" {
			t.Errorf("bucket [%s]: created by %v", b.State, b.CreatedBy)
		}
	}
	if user != 32 {
		t.Errorf("%d buckets of the program's goroutines, want 32", user)
	}
	n := 0
	for _, b := range buckets {
		n += len(b.Goroutines)
	}
	if n != len(l.rt.Gs) || len(l.rt.Gs) < parked {
		t.Errorf("%d goroutines in buckets, %d listed, %d parked", n, len(l.rt.Gs), parked)
	}
	if testing.Short() {
		return
	}
	// Delve counts the same goroutines (it takes seconds at this size).
	dt, err := l.proc.Delve()
	if err != nil {
		t.Skipf("Delve: %v", err)
	}
	gs, _, err := proc.GoroutinesInfo(dt, 0, 0)
	if err != nil {
		t.Fatalf("Delve: %v", err)
	}
	dn := 0
	for _, g := range gs {
		if g.ID != 0 && g.Status != delveDeadExtra {
			dn++
		}
	}
	if dn != len(l.rt.Gs) {
		t.Errorf("Delve counts %d goroutines, we %d", dn, len(l.rt.Gs))
	}
}

// BenchmarkGoroutines100k reads the runtime view of the 100000-goroutine
// core from scratch and unwinds and buckets every goroutine, as the
// report does with --all.
func BenchmarkGoroutines100k(b *testing.B) {
	f, err := fixtures.Load(manyFixture)
	if err != nil {
		b.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		b.Fatal(err)
	}
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	var gs int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := load(p)
		if err != nil {
			b.Fatal(err)
		}
		bs := r.Buckets(0)
		gs = len(r.Gs)
		if len(bs) < 32 {
			b.Fatalf("%d buckets", len(bs))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(gs), "goroutines")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.Sys)/(1<<20), "MB-sys")
}

// BenchmarkStack unwinds one goroutine 32 frames deep.
func BenchmarkStack(b *testing.B) {
	l := loadFixture(b, manyFixture, fixtures.Default)
	var g *G
	for _, x := range l.rt.Gs {
		st := l.rt.Stack(x, 0)
		if len(st.Frames) > 32 && strings.HasPrefix(st.Frames[len(st.Frames)-2].Func, "main.") {
			g = x
			break
		}
	}
	if g == nil {
		b.Fatal("no deep goroutine")
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.rt.Stack(g, 0)
	}
}
