package memory_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/insn"
	"github.com/coreexplain/coreexplain/coredump/memory"
	"github.com/coreexplain/coreexplain/fixtures"
)

func crash(t *testing.T, name string) (*fixtures.Crash, *coredump.Process) {
	t.Helper()
	return crashVariant(t, name, fixtures.Default)
}

func crashVariant(t *testing.T, name string, v fixtures.Variant) (*fixtures.Crash, *coredump.Process) {
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
	return c, p
}

func fact(t *testing.T, c *fixtures.Crash, key string) uint64 {
	t.Helper()
	v := c.Oracle.Facts[key]
	if len(v) == 0 {
		t.Fatalf("no FACT %s", key)
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(v[0], "0x"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var (
	reGoroutineGp = regexp.MustCompile(`(?m)^goroutine (\d+) gp=0x([0-9a-f]+)`)
	reFrameFP     = regexp.MustCompile(`fp=0x([0-9a-f]+) sp=0x([0-9a-f]+) pc=`)
)

// Addresses the runtime printed are classified as what they are: g
// structs as allocated heap objects, frame addresses as the stack of the
// goroutine whose traceback printed them, the fault address as the null
// page, code as the function holding it.
func TestClassifyGoProcess(t *testing.T) {
	c, p := crash(t, "go-nil-field")
	sp := memory.For(p)
	if r := sp.Classify(0x80); r.Kind != memory.NullPage || !r.Dangling {
		t.Errorf("0x80: %+v", r)
	}
	gps := reGoroutineGp.FindAllStringSubmatch(c.Stderr, -1)
	if len(gps) < 2 {
		t.Fatalf("goroutine headers: %q", gps)
	}
	for _, m := range gps {
		gp, _ := strconv.ParseUint(m[2], 16, 64)
		r := sp.Classify(gp)
		if r.Kind != memory.GoHeap || r.Heap == nil || r.Heap.State.String() != "allocated" || uint64(r.Heap.Object) != gp {
			t.Errorf("g %s at %#x: %s", m[1], gp, r.Summary)
		}
	}
	// Each goroutine's frames lie on its own stack, in the live part.
	blocks := strings.Split(c.Stderr, "\ngoroutine ")
	checked := 0
	for _, b := range blocks[1:] {
		id, _ := strconv.ParseInt(strings.Fields(b)[0], 10, 64)
		for _, m := range reFrameFP.FindAllStringSubmatch(b, -1) {
			spv, _ := strconv.ParseUint(m[2], 16, 64)
			r := sp.Classify(spv)
			if r.Kind != memory.GoStack || r.Stack == nil || r.Stack.Goroutine != id {
				t.Errorf("goroutine %d frame sp %#x: %s", id, spv, r.Summary)
				continue
			}
			if r.Stack.Live != nil && !*r.Stack.Live {
				t.Errorf("goroutine %d frame sp %#x classified as dead: %s", id, spv, r.Summary)
			}
			checked++
		}
	}
	if checked < 4 {
		t.Errorf("only %d frames checked", checked)
	}
	r := sp.Classify(c.Oracle.PC)
	if r.Kind != memory.ImageMemory || r.Image == nil || r.Image.Symbol != "main.(*Server).maxIdle" || r.Image.Section != ".text" {
		t.Errorf("pc %#x: %+v", c.Oracle.PC, r.Image)
	}
	m0, ok := p.Exe.LookupSymbol("runtime.m0")
	if !ok {
		t.Fatal("no runtime.m0")
	}
	if r := sp.Classify(m0.Addr + 8); r.Kind != memory.GoData || r.Image.Symbol != "runtime.m0" || r.Image.Offset != 8 {
		t.Errorf("runtime.m0+8: %s %+v", r.Summary, r.Image)
	}
	// A pure Go program points fs at m.tls: every thread's TLS is found.
	for _, th := range p.Threads {
		if r := sp.Classify(th.TP()); r.TLS == nil || r.TLS.TID != th.TID {
			t.Errorf("thread %d tp %#x: %s", th.TID, th.TP(), r.Summary)
		}
	}
}

// Objects the program freed are free slots of their span; live ones are
// allocated, with their type where the runtime records it.
func TestClassifyHeapObjects(t *testing.T) {
	for _, v := range []fixtures.Variant{{Go: "go1.21.13"}, {Go: "go1.22.12"}, fixtures.Default} {
		t.Run(v.String(), func(t *testing.T) { classifyHeapObjects(t, v) })
	}
}

func classifyHeapObjects(t *testing.T, v fixtures.Variant) {
	c, p := crashVariant(t, "go-heap-objects", v)
	sp := memory.For(p)
	for _, a := range c.Oracle.Facts["freed_odd"] {
		addr, _ := strconv.ParseUint(strings.TrimPrefix(a, "0x"), 16, 64)
		r := sp.Classify(addr)
		if r.Kind != memory.GoHeap || !r.Dangling || !strings.Contains(r.Why, "free") {
			t.Errorf("freed object %#x: %s", addr, r.Summary)
		}
	}
	r := sp.Classify(fact(t, c, "record"))
	wantType := "main.Record"
	if v.Go == "go1.21.13" {
		wantType = "" // no malloc headers before Go 1.22
	}
	if r.Kind != memory.GoHeap || r.Dangling || r.Heap.Type != wantType || !strings.Contains(r.Summary, "allocated") {
		t.Errorf("record: %s", r.Summary)
	}
	// The goroutine that panicked is found on its own stack.
	found := false
	for _, st := range sp.GoroutineStacks() {
		if st.Goroutine == c.Oracle.Goroutine {
			found = true
		}
	}
	if !found {
		t.Errorf("goroutine %d not among the stacks", c.Oracle.Goroutine)
	}
}

// The fault each kind of crash died of: a Go nil dereference (from the
// goroutine), a C fault in a cgo call (from the kernel's signal frame), a
// C program (from NT_SIGINFO).
func TestCrashFault(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inGo   bool
		source string
		access insn.Access
	}{
		{"go-nil-field", true, "g.sig", insn.AccessUnknown},
		{"cgo-null-write", false, "kernel signal frame", insn.AccessWrite},
		{"cgo-bad-funcptr", false, "kernel signal frame", insn.AccessExecute},
		{"c-segv", false, "NT_SIGINFO", insn.AccessUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := crash(t, tc.name)
			ft := memory.For(p).CrashFault()
			if ft == nil {
				t.Fatal("no fault found")
			}
			o := c.Oracle
			wantAddr := o.Addr
			if tc.name == "c-segv" {
				wantAddr = 0xdeadbeef00 // a C program prints no oracle
			}
			if ft.Signo != coredump.SIGSEGV || ft.Addr != wantAddr || ft.InGo != tc.inGo || !strings.Contains(ft.Source, tc.source) {
				t.Errorf("fault %+v; oracle %+v", ft, o)
			}
			if o.PC != 0 && ft.PC != o.PC {
				t.Errorf("pc %#x, runtime printed %#x", ft.PC, o.PC)
			}
			if tc.inGo && ft.Goroutine != o.Goroutine {
				t.Errorf("goroutine %d, runtime printed %d", ft.Goroutine, o.Goroutine)
			}
			if a, ok := ft.Access(); ok != (tc.access != insn.AccessUnknown) || a != tc.access {
				t.Errorf("access %v (%v), want %v", a, ok, tc.access)
			}
			if !tc.inGo && (ft.Regs == nil || ft.Regs.PC() != ft.PC) {
				t.Errorf("registers at the fault: %+v", ft.Regs)
			}
		})
	}
}

// The slice made over a freed C buffer is dangling: its data pointer is
// the buffer the program printed, now unmapped.
func TestSliceOverFreedCBuffer(t *testing.T) {
	c, p := crash(t, "cgo-dangling-slice")
	frames, err := memory.GoroutineFrames(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fr := range frames {
		names = append(names, fr.Function)
		if fr.Function != "main.main" {
			continue
		}
		sl, err := memory.For(p).SliceExpr(fr.Scope, "data")
		if err != nil {
			t.Fatal(err)
		}
		if uint64(sl.Data) != fact(t, c, "data") || !sl.Dangling || len(sl.Ranges) == 0 || sl.Ranges[0].Region.Kind != memory.Unmapped {
			t.Errorf("data: %+v", sl)
		}
		return
	}
	t.Fatalf("no main.main frame in %q", names)
}

// The C global the program set still points at the Go slot it printed.
func TestCHeldGoPointers(t *testing.T) {
	c, p := crash(t, "cgo-retains-go-pointer")
	saved := fact(t, c, "saved")
	reused := c.Oracle.Facts["reused"][0] == "true"
	ptrs, notes := memory.For(p).CHeldGoPointers()
	for _, gp := range ptrs {
		if gp.HolderName != "saved_record" {
			continue
		}
		if uint64(gp.Value) != saved || gp.HolderKind != "C global" || gp.Target.Kind != memory.GoHeap {
			t.Errorf("saved_record: %+v", gp)
		}
		if st := gp.Target.Heap.State.String(); reused && st != "allocated" || !reused && st != "free" {
			t.Errorf("slot state %s, program says reused=%v", st, reused)
		}
		return
	}
	t.Fatalf("saved_record not found among %d pointers (notes %q)", len(ptrs), notes)
}

// BenchmarkClassify measures classifying addresses of every kind in a Go
// process: heap objects, stacks, image data, unmapped.
func BenchmarkClassify(b *testing.B) {
	f, err := fixtures.Load("go-heap-objects")
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
	var addrs []uint64
	for _, k := range []string{"record", "blob", "small", "live_odd", "freed_odd"} {
		for _, v := range c.Oracle.Facts[k] {
			a, _ := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64)
			addrs = append(addrs, a)
		}
	}
	addrs = append(addrs, 0x80, c.Oracle.PC, p.Threads[0].Regs.SP(), 0x7fff00000000)
	sp := memory.For(p)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, a := range addrs {
			sp.Classify(a)
		}
	}
}

// BenchmarkCHeldGoPointers measures the scan of C globals and C heap.
func BenchmarkCHeldGoPointers(b *testing.B) {
	f, err := fixtures.Load("cgo-retains-go-pointer")
	if err != nil {
		b.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
		if err != nil {
			b.Fatal(err)
		}
		memory.For(p).CHeldGoPointers()
		p.Close()
	}
}
