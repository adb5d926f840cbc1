package goruntime_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/fixtures"
)

var (
	reGp = regexp.MustCompile(`(?m)^goroutine \d+ gp=0x([0-9a-f]+)`)
	reFP = regexp.MustCompile(`fp=0x([0-9a-f]+) sp=`)
)

// heapVariants are the toolchains the heap reader is checked with; each
// changed mspan or heapArena.
var heapVariants = []fixtures.Variant{
	{Go: "go1.21.13"}, {Go: "go1.22.12"}, {Go: "go1.23.12"}, {Go: "go1.24.13"}, {Go: "go1.25.14"}, fixtures.Default,
}

func openHeap(t *testing.T, name string, v fixtures.Variant) (*fixtures.Crash, *goruntime.Binary, *goruntime.Heap) {
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
	b, err := goruntime.LoadBinary(p.Exe)
	if err != nil {
		t.Fatal(err)
	}
	h, err := goruntime.NewHeap(p, b)
	if err != nil {
		t.Fatal(err)
	}
	return c, b, h
}

func factAddrs(t *testing.T, c *fixtures.Crash, key string) []uint64 {
	t.Helper()
	var out []uint64
	for _, s := range c.Oracle.Facts[key] {
		v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
		if err != nil {
			t.Fatalf("FACT %s=%s: %v", key, s, err)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		t.Fatalf("the program printed no FACT %s", key)
	}
	return out
}

// The heap reader agrees with the program about every object it
// allocated: live ones allocated, freed ones free, types where the runtime
// records them, for every supported toolchain.
func TestHeapObjects(t *testing.T) {
	for _, v := range heapVariants {
		t.Run(v.String(), func(t *testing.T) {
			c, b, h := openHeap(t, "go-heap-objects", v)
			look := func(what string, a uint64) *goruntime.HeapAddr {
				t.Helper()
				r, ok, err := h.Lookup(a)
				if err != nil || !ok {
					t.Fatalf("%s %#x: ok=%v err=%v", what, a, ok, err)
				}
				return r
			}
			typed := b.Version.AtLeast(22)
			rec := factAddrs(t, c, "record")[0]
			r := look("record", rec)
			if r.State != goruntime.ObjectAllocated || r.Span.State != goruntime.SpanInUse || r.Span.NoScan {
				t.Errorf("record: %+v span %+v", r, r.Span)
			}
			wantData := uint64(r.Object)
			if typed {
				wantData += 8 // malloc header
				if r.Type != "main.Record" {
					t.Errorf("record type %q, want main.Record", r.Type)
				}
			}
			if uint64(r.DataStart) != wantData || rec != wantData {
				t.Errorf("record at %#x: object %#x data %#x", rec, uint64(r.Object), uint64(r.DataStart))
			}
			field := factAddrs(t, c, "record_field")[0]
			if f := look("record field", field); f.Object != r.Object || f.Offset != field-uint64(r.Object) {
				t.Errorf("record field: object %#x offset %d", uint64(f.Object), f.Offset)
			}

			blob := look("blob", factAddrs(t, c, "blob")[0])
			if blob.State != goruntime.ObjectAllocated || blob.Span.SizeClass != 0 || blob.Span.NElems != 1 ||
				uint64(blob.Object) != uint64(blob.Span.Start) {
				t.Errorf("blob: %+v span %+v", blob, blob.Span)
			}
			if typed && blob.Type != "main.Blob" {
				t.Errorf("blob type %q, want main.Blob", blob.Type)
			}
			small := look("small", factAddrs(t, c, "small")[0])
			if small.State != goruntime.ObjectAllocated || !small.Span.NoScan || small.Type != "" {
				t.Errorf("small: %+v span %+v", small, small.Span)
			}
			for _, a := range factAddrs(t, c, "live_odd") {
				if o := look("live odd", a); o.State != goruntime.ObjectAllocated || uint64(o.Object) != a || o.Span.ElemSize < 1152 {
					t.Errorf("live odd %#x: %v object %#x elemsize %d", a, o.State, uint64(o.Object), o.Span.ElemSize)
				}
			}
			for _, a := range factAddrs(t, c, "freed_odd") {
				if o := look("freed odd", a); o.State != goruntime.ObjectFree && o.State != goruntime.ObjectFreePage {
					t.Errorf("freed odd %#x: %v (span %+v)", a, o.State, o.Span)
				}
			}
		})
	}
}

// Goroutine stacks lie in manual spans; the g structs the runtime printed
// are allocated heap objects.
func TestHeapStacksAndGs(t *testing.T) {
	c, _, h := openHeap(t, "go-nil-field", fixtures.Default)
	for _, m := range reGp.FindAllStringSubmatch(c.Stderr, -1) {
		gp, _ := strconv.ParseUint(m[1], 16, 64)
		r, ok, err := h.Lookup(gp)
		if err != nil || !ok || r.State != goruntime.ObjectAllocated || uint64(r.Object) != gp {
			t.Errorf("g at %#x: ok=%v err=%v %+v", gp, ok, err, r)
		}
	}
	fps := reFP.FindAllStringSubmatch(c.Stderr, -1)
	if len(fps) == 0 {
		t.Fatal("no fp= in the traceback")
	}
	for _, m := range fps {
		fp, _ := strconv.ParseUint(m[1], 16, 64)
		r, ok, err := h.Lookup(fp - 8)
		if err != nil || !ok || r.State != goruntime.ObjectStack || r.Span.State != goruntime.SpanManual {
			t.Errorf("stack address %#x: ok=%v err=%v %+v", fp-8, ok, err, r)
		}
	}
	if _, ok, err := h.Lookup(0x1000); ok || err != nil {
		t.Errorf("0x1000 is in the Go heap? ok=%v err=%v", ok, err)
	}
}
