//go:build linux

package diagnose

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
)

func findings(fs []Finding, class string) []Finding {
	var out []Finding
	for _, f := range fs {
		if string(f.Class) == class {
			out = append(out, f)
		}
	}
	return out
}

func hasEvidence(f Finding, substr string) bool {
	for _, e := range f.Evidence {
		if strings.Contains(e.What, substr) {
			return true
		}
	}
	return false
}

func fact(t *testing.T, o *fixtures.Oracle, key string) string {
	t.Helper()
	v := o.Facts[key]
	if len(v) == 0 {
		t.Fatalf("the fixture printed no FACT %s", key)
	}
	return v[0]
}

// checkServiceHang checks the hang findings on the live-mutex-cgo service,
// live or from its core, against what the program printed.
func checkServiceHang(t *testing.T, o *fixtures.Oracle, fs []Finding) {
	t.Helper()
	lc := findings(fs, "lock-contention")
	if len(lc) < 2 {
		t.Fatalf("%d lock-contention findings: %+v", len(lc), fs)
	}
	// The global mutex: most waiters, the cause of the hang.
	top := lc[0]
	want := fmt.Sprintf("%s goroutines in %s wait to lock sync.Mutex %s, held by goroutine ", fact(t, o, "waiters"), fact(t, o, "waiter"), fact(t, o, "mutex"))
	if !strings.HasPrefix(top.Summary, want) || !top.Cause || top.Confidence != High {
		t.Errorf("finding %q (cause %v, %v), want it to start with %q", top.Summary, top.Cause, top.Confidence, want)
	}
	holder, cfn := fact(t, o, "holder"), fact(t, o, "holder_c_function")
	if top.Location == nil || top.Location.Function != holder || !strings.Contains(top.Summary, "in "+holder+", which is in C function "+cfn+" (cgo call)") {
		t.Errorf("holder: %q, location %+v; want %s in C function %s", top.Summary, top.Location, holder, cfn)
	}
	if !hasEvidence(top, "is locked, "+fact(t, o, "waiters")+" waiters") || !hasEvidence(top, holder+" refers to "+fact(t, o, "mutex")) {
		t.Errorf("evidence of %q: %+v", top.Summary, top.Evidence)
	}
	// The heap mutex, held by a goroutine sleeping in Go.
	heapMu, _ := coredump.ParseAddr(fact(t, o, "heap_mutex"))
	want = fmt.Sprintf("%s goroutines in %s wait to lock sync.Mutex at %s, held by goroutine ", fact(t, o, "heap_mutex_waiters"), fact(t, o, "heap_mutex_waiter"), heapMu)
	if h := lc[1]; !strings.HasPrefix(h.Summary, want) || h.Cause || h.Location == nil || h.Location.Function != fact(t, o, "heap_mutex_holder") {
		t.Errorf("heap mutex: %q, location %+v; want %q... held by %s", h.Summary, h.Location, want, fact(t, o, "heap_mutex_holder"))
	}
	sc := findings(fs, "stuck-in-c")
	if len(sc) != 1 || sc[0].Location == nil || sc[0].Location.Function != cfn ||
		!strings.Contains(sc[0].Summary, "called through cgo by "+holder) || !strings.Contains(sc[0].Summary, "holding sync.Mutex "+fact(t, o, "mutex")) {
		t.Errorf("stuck-in-c: %+v", sc)
	}
}

func startService(t *testing.T) *fixtures.Service {
	t.Helper()
	f, err := fixtures.Load("live-mutex-cgo")
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Start(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// The same hang, seen live and in a core written at the same stop.
func TestHangLiveAndDumped(t *testing.T) {
	s := startService(t)
	p, err := coredump.Attach(s.PID(), coredump.LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	facts := NewFacts(p)
	live := Run(facts)
	h, err := facts.Hang()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "core")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.WriteCore(out, coredump.CoreOptions{})
	out.Close()
	if derr := p.Detach(); derr != nil {
		t.Fatal(derr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Running(); err != nil {
		t.Fatal(err)
	}
	checkServiceHang(t, s.Oracle, live)

	// The goroutine blocked on a channel, grouped by the channel.
	ch, _ := coredump.ParseAddr(fact(t, s.Oracle, "chan"))
	found := false
	for _, o := range h.Objects {
		if o.Kind == "channel" && o.Addr == uint64(ch) {
			found = len(o.Waiters) == 1 && o.Mode == "receive" && o.Waiters[0].Func == fact(t, s.Oracle, "chan_waiter")
		}
	}
	if !found {
		t.Errorf("no channel %#x with one receiver in %s", ch, fact(t, s.Oracle, "chan_waiter"))
	}

	c, err := coredump.Open(path, "", coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dumped := Run(NewFacts(c))
	checkServiceHang(t, s.Oracle, dumped)
	for _, class := range []string{"lock-contention", "stuck-in-c"} {
		a, b := findings(live, class), findings(dumped, class)
		for i := range min(len(a), len(b)) {
			if a[i].Summary != b[i].Summary || a[i].Key != b[i].Key {
				t.Errorf("%s: live %q, core %q", class, a[i].Summary, b[i].Summary)
			}
		}
	}
}

func openCrash(t *testing.T, name string, v fixtures.Variant) (*coredump.Process, *fixtures.Crash) {
	t.Helper()
	f, err := fixtures.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(v)
	if err != nil {
		t.Fatal(err)
	}
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, c
}

// In a crash core the contention is context, not the cause. sync.Mutex
// changed shape in Go 1.24 (internal/sync): both shapes are read.
func TestHangDeadlockCore(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {Go: "go1.22.12"}, {Go: "go1.24.13"}} {
		t.Run(v.String(), func(t *testing.T) {
			p, _ := openCrash(t, "go-deadlock", v)
			lc := findings(Run(NewFacts(p)), "lock-contention")
			if len(lc) != 1 {
				t.Fatalf("lock-contention findings: %+v", lc)
			}
			want := "1 goroutine in main.waitForLock waits to lock sync.Mutex main.mu, held by goroutine "
			if f := lc[0]; !strings.HasPrefix(f.Summary, want) || f.Cause || f.Location.Function != "main.holdForever" || f.Confidence != High {
				t.Errorf("%q (cause %v, %v) at %+v, want %q... main.holdForever", f.Summary, f.Cause, f.Confidence, f.Location, want)
			}
		})
	}
}

func TestGoroutineLeak(t *testing.T) {
	p, c := openCrash(t, "go-goroutine-leak", fixtures.Default)
	gl := findings(Run(NewFacts(p)), "goroutine-leak")
	n := fact(t, c.Oracle, "leaked")
	if len(gl) != 1 {
		t.Fatalf("goroutine-leak findings: %+v", gl)
	}
	want := fmt.Sprintf("%s goroutines (", n)
	fn := fact(t, c.Oracle, "leak_function")
	if f := gl[0]; !strings.HasPrefix(f.Summary, want) || f.Location == nil || f.Location.Function != fn ||
		!strings.Contains(f.Summary, "(chan send) in "+fn+", created by "+fact(t, c.Oracle, "created_by")) {
		t.Errorf("%q at %+v", f.Summary, f.Location)
	}
	if k, _ := strconv.Atoi(n); k < leakMin {
		t.Logf("leak of %d goroutines found by its share of all goroutines", k)
	}
	// The channels they block on, one per search, are one family.
	lc := findings(Run(NewFacts(p)), "lock-contention")
	want = fmt.Sprintf("%s goroutines in %s wait to send on %s channels (%s on each); no other goroutine's code or stack refers to the first of them",
		n, fn, fact(t, c.Oracle, "channels"), fact(t, c.Oracle, "per_channel"))
	if len(lc) != 1 || lc[0].Summary != want {
		t.Errorf("lock-contention: %+v, want one: %q", lc, want)
	}
}

// BenchmarkHangRules measures the hang analysis of a core with 1400
// blocked goroutines from opening it: the runtime view, grouping the
// waits, finding the holders, bucketing.
func BenchmarkHangRules(b *testing.B) {
	f, err := fixtures.Load("go-goroutine-leak")
	if err != nil {
		b.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
		if err != nil {
			b.Fatal(err)
		}
		facts := NewFacts(p)
		lockContention(facts)
		goroutineLeak(facts)
		p.Close()
	}
}
