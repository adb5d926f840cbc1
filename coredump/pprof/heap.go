package pprof

import (
	"fmt"

	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/google/pprof/profile"
)

// Heap builds a profile of the live Go heap of r's process from a scan of
// every span in use (goruntime.Heap.Walk): sample types inuse_objects and
// inuse_space, one sample per object type and size. Where the runtime
// records an object's type (Go 1.22+: scan objects over 512 bytes and
// large scan objects) the stack is [type, size class]; other objects have
// only their size class, named like "noscan 48 B", "scan 640 B" or "large
// noscan 40960 B". Sizes are the objects' slots: their size class, malloc
// header included. The profile's comments say what is approximate and
// what could not be read.
func Heap(r *goruntime.Runtime) (*profile.Profile, error) {
	h, err := goruntime.NewHeap(r.Proc, r.Binary)
	if err != nil {
		return nil, err
	}
	type key struct {
		typ   uint64
		class uint8
		size  uint64
	}
	type count struct{ objects, bytes int64 }
	counts := map[key]*count{}
	var order []key
	w, err := h.Walk(func(o *goruntime.HeapObject) {
		k := key{o.TypeAddr, o.Span.SpanClass, o.Size}
		c := counts[k]
		if c == nil {
			c = &count{}
			counts[k] = c
			order = append(order, k)
		}
		c.objects++
		c.bytes += int64(o.Size)
	})
	if err != nil {
		return nil, err
	}
	p := &profile.Profile{
		SampleType:        []*profile.ValueType{{Type: "inuse_objects", Unit: "count"}, {Type: "inuse_space", Unit: "bytes"}},
		DefaultSampleType: "inuse_space",
		PeriodType:        &profile.ValueType{Type: "space", Unit: "bytes"},
		Period:            1,
		TimeNanos:         timestamp(r.Proc),
	}
	b := newBuilder(p)
	b.addMappings(r.Proc)
	names := map[uint64]string{}
	var badTypes, badTypeObjects int64
	var badTypeErr error
	for _, k := range order {
		c := counts[k]
		class := b.pseudo(sizeClassName(k.class, k.size))
		locs := []*profile.Location{class}
		if k.typ != 0 {
			name, ok := names[k.typ]
			if !ok {
				n, err := h.TypeName(k.typ)
				if err != nil {
					// The heap's reader needs runtime.firstmoduledata by
					// symbol; the runtime view finds it without.
					n, err = r.TypeName(k.typ)
				}
				if err != nil {
					badTypes++
					badTypeErr = fmt.Errorf("type descriptor at %#x: %w", k.typ, err)
				}
				name, names[k.typ] = n, n
			}
			if name != "" {
				locs = []*profile.Location{b.pseudo(name), class}
			} else {
				badTypeObjects += c.objects
			}
		}
		p.Sample = append(p.Sample, &profile.Sample{Location: locs, Value: []int64{c.objects, c.bytes},
			NumLabel: map[string][]int64{"bytes": {int64(k.size)}}, NumUnit: map[string][]string{"bytes": {"bytes"}}})
	}
	b.finishMappings()
	p.Comments = header("live heap profile", r)
	p.Comments = append(p.Comments, heapComments(r, w)...)
	if badTypes > 0 {
		p.Comments = append(p.Comments, fmt.Sprintf("%d objects of %d types whose names are unreadable are counted by size class only (last: %v)",
			badTypeObjects, badTypes, badTypeErr))
	}
	return p, nil
}

// sizeClassName names the pseudo-function of a span class.
func sizeClassName(spanClass uint8, size uint64) string {
	kind := "scan"
	if spanClass&1 != 0 {
		kind = "noscan"
	}
	if spanClass>>1 == 0 {
		kind = "large " + kind
	}
	return fmt.Sprintf("%s %d B", kind, size)
}

// heapComments says what the walk covered, what is approximate and what
// could not be read.
func heapComments(r *goruntime.Runtime, w *goruntime.HeapWalk) []string {
	out := []string{
		fmt.Sprintf("%d live objects, %d bytes, in %d spans in use (of %d spans listed by %s)", w.Objects, w.Bytes, w.InUse, w.Spans, w.Source),
	}
	for _, t := range r.HeapTotals() {
		out = append(out, fmt.Sprintf("the runtime's own figure: %s: %d bytes (%s)", t.Name, t.Bytes, t.Source))
	}
	out = append(out, "sizes are object slots: the size class of each object (malloc header included), or its span for large objects; the 16-byte noscan slots of the tiny allocator may hold several small objects")
	if r.Version.AtLeast(22) {
		out = append(out, fmt.Sprintf("%d of %d objects carry a type the runtime recorded (scan objects over 512 bytes, large scan objects); the others are grouped by size class", w.Typed, w.Objects))
	} else {
		out = append(out, fmt.Sprintf("%s records no object types (malloc headers came in Go 1.22): objects are grouped by size class", r.Version))
	}
	out = append(out, "objects allocated since the last garbage collection are counted whether or not anything still references them: only a collection could tell")
	if w.Unswept > 0 {
		out = append(out, fmt.Sprintf("%d spans were not swept since the last collection: %d of their objects (%d bytes) the collection did not mark are garbage and not counted", w.Unswept, w.Garbage, w.GarbageBytes))
	}
	if w.Sweeping > 0 {
		out = append(out, fmt.Sprintf("%d spans were being swept at the dump: their objects are counted by their allocation bits, some may be garbage", w.Sweeping))
	}
	if w.UnmarkedUnknown > 0 {
		out = append(out, fmt.Sprintf("%d objects of unswept spans whose mark bits are unreadable are counted as live", w.UnmarkedUnknown))
	}
	if w.Manual > 0 {
		out = append(out, fmt.Sprintf("goroutine stacks and runtime-internal memory (%d manual spans, %d bytes) are not heap objects and not counted", w.Manual, w.ManualBytes))
	}
	if w.UnreadableSpans > 0 {
		out = append(out, fmt.Sprintf("unreadable: %d spans whose metadata is not in the core: their objects are not counted", w.UnreadableSpans))
	}
	if w.UnknownSlots > 0 {
		out = append(out, fmt.Sprintf("unreadable: %d object slots (%d bytes) whose allocation bits are not in the core: not counted", w.UnknownSlots, w.UnknownBytes))
	}
	if w.TypeUnreadable > 0 {
		out = append(out, fmt.Sprintf("unreadable: %d objects whose malloc header is not in the core are counted by size class only", w.TypeUnreadable))
	}
	if w.CountMismatch > 0 {
		out = append(out, fmt.Sprintf("%d swept spans hold a different number of objects by their allocation bits than by their allocCount", w.CountMismatch))
	}
	for _, s := range w.Problems {
		out = append(out, "problem: "+s)
	}
	if w.ProblemCount > len(w.Problems) {
		out = append(out, fmt.Sprintf("%d more problems", w.ProblemCount-len(w.Problems)))
	}
	return out
}
