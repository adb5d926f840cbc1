package goruntime_test

import (
	"testing"

	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// go-heap-unswept dies right after a collection, before the sweeper
// reached most spans: the objects it dropped are still allocated by their
// spans' allocation bits, and only the marks (gcmarkBits, or Green Tea's
// inline mark bits for its 416-byte objects on Go 1.26) tell the walk
// they are garbage. The walk counts exactly the objects the program kept.
func TestHeapWalkUnswept(t *testing.T) {
	for _, v := range []fixtures.Variant{{Go: "go1.21.13"}, {Go: "go1.24.13"}, {Go: "go1.25.14"}, fixtures.Default} {
		t.Run(v.String(), func(t *testing.T) {
			c, b, h := openHeap(t, "go-heap-unswept", v)
			fact := func(k string) uint64 { return uint64(fixturetest.IntFact(t, c, k)) }
			var smalls, nodes, chunks, typedNodes, typedChunks uint64
			w, err := h.Walk(func(o *goruntime.HeapObject) {
				switch {
				case o.Size == 416 && !o.Span.NoScan:
					smalls++
				case o.Size == 640 && !o.Span.NoScan:
					nodes++
				case o.Size == 40960 && o.Span.SizeClass == 0 && !o.Span.NoScan:
					chunks++
				}
				if o.TypeAddr != 0 {
					switch n, _ := h.TypeName(o.TypeAddr); n {
					case "main.Node":
						typedNodes++
					case "main.Chunk":
						typedChunks++
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", *w)
			if w.Unswept == 0 || w.Garbage == 0 {
				t.Fatalf("%d unswept spans, %d garbage objects: the fixture did not catch the sweep", w.Unswept, w.Garbage)
			}
			// The 416-byte and 640-byte classes hold the program's objects
			// and the few the runtime allocated there.
			if smalls < fact("small") || smalls > fact("small")+32 {
				t.Errorf("%d live 416-byte scan objects, want the %d the program kept and few others (%d dropped)", smalls, fact("small"), fact("dropped"))
			}
			if nodes < fact("nodes") || nodes > fact("nodes")+32 {
				t.Errorf("%d live 640-byte scan objects, want the %d nodes the program kept and few others", nodes, fact("nodes"))
			}
			// Go 1.21's slices of kept pointers may end in that class too.
			if chunks < fact("chunks") || chunks > fact("chunks")+4 {
				t.Errorf("%d live large 40960-byte scan objects, want the %d chunks the program kept (%d dropped)", chunks, fact("chunks"), fact("chunks"))
			}
			if b.Version.AtLeast(22) && (typedNodes != fact("nodes") || typedChunks != fact("chunks")) {
				t.Errorf("typed main.Node %d, main.Chunk %d; want %d and %d", typedNodes, typedChunks, fact("nodes"), fact("chunks"))
			}

			live, ok, err := h.Lookup(factAddrs(t, c, "live_small")[0])
			if err != nil || !ok || live.State != goruntime.ObjectAllocated {
				t.Fatalf("kept object: %+v %v %v", live, ok, err)
			}
			dropped, ok, err := h.Lookup(factAddrs(t, c, "dropped_small")[0])
			if err != nil || !ok {
				t.Fatalf("dropped object: %v %v", ok, err)
			}
			if dropped.Span.Unswept {
				if dropped.State != goruntime.ObjectGarbage {
					t.Errorf("dropped object in an unswept span is %v, want garbage", dropped.State)
				}
			} else if dropped.State != goruntime.ObjectFree {
				t.Errorf("dropped object in a swept span is %v, want free", dropped.State)
			}
			if live.Span.Unswept != live.Marked {
				t.Errorf("kept object: span unswept %v, marked %v", live.Span.Unswept, live.Marked)
			}
		})
	}
}
