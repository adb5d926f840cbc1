package goruntime_test

import (
	"fmt"
	"sort"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/fixtures"
)

func TestHeapWalkExplore(t *testing.T) {
	for _, name := range []string{"go-heap-types", "go-heap-objects"} {
		for _, v := range []fixtures.Variant{{Go: "go1.21.13"}, fixtures.Default} {
			_, _, h := openHeap(t, name, v)
			counts := map[string]int{}
			w, err := h.Walk(func(o *goruntime.HeapObject) {
				k := fmt.Sprintf("noscan=%v %d", o.Span.NoScan, o.Size)
				if o.TypeAddr != 0 {
					n, err := h.TypeName(o.TypeAddr)
					k = n + " " + fmt.Sprint(err)
				}
				counts[k]++
			})
			if err != nil {
				t.Fatal(err)
			}
			var ks []string
			for k, n := range counts {
				ks = append(ks, fmt.Sprintf("%6d %s", n, k))
			}
			sort.Strings(ks)
			t.Logf("%s %s: %+v", name, v, *w)
			for _, k := range ks {
				t.Log(k)
			}
		}
	}
}
