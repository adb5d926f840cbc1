package pprof_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/coredump/pprof"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
	"github.com/google/pprof/profile"
)

func load(t *testing.T, name string, v fixtures.Variant) (*goruntime.Runtime, *fixtures.Crash) {
	t.Helper()
	c := fixturetest.MustCrash(t, name, v)
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	r, err := goruntime.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

// roundTrip writes prof as go tool pprof reads it and parses it back.
func roundTrip(t *testing.T, prof *profile.Profile) (*profile.Profile, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "profile.pb.gz")
	var b bytes.Buffer
	if err := prof.Write(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := profile.Parse(&b)
	if err != nil {
		t.Fatalf("parse back: %v", err)
	}
	return back, path
}

// heapTotals sums a heap profile's objects and bytes by the sample's
// innermost function: the type, else the size class.
func heapTotals(prof *profile.Profile) (objects, space map[string]int64) {
	objects, space = map[string]int64{}, map[string]int64{}
	for _, s := range prof.Sample {
		name := s.Location[0].Line[0].Function.Name
		objects[name] += s.Value[0]
		space[name] += s.Value[1]
	}
	return objects, space
}

func hasFunc(s *profile.Sample, fn string) bool {
	for _, l := range s.Location {
		for _, ln := range l.Line {
			if ln.Function.Name == fn {
				return true
			}
		}
	}
	return false
}

// pprofTop runs go tool pprof -top on path and returns the cumulative
// value of each function it lists.
func pprofTop(t *testing.T, path string, args ...string) map[string]int64 {
	t.Helper()
	cmd := exec.Command("go", append(append([]string{"tool", "pprof", "-top", "-nodecount=1000", "-nodefraction=0"}, args...), path)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof: %v\n%s", err, out)
	}
	cum := map[string]int64{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		// flat flat% sum% cum cum% name...
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") || !strings.HasSuffix(f[4], "%") {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimRight(f[3], "BkMG"), 10, 64)
		if err != nil {
			continue
		}
		cum[strings.Join(f[5:], " ")] = v
	}
	return cum
}

// The 100000 parked goroutines of go-many-goroutines: 12500 blocked in
// each of eight ways, all under main.descend and main.park.
func TestGoroutineProfile(t *testing.T) {
	r, c := load(t, "go-many-goroutines", fixtures.Default)
	parked := int(fixturetest.IntFact(t, c, "parked"))
	prof, err := pprof.Goroutines(r, pprof.GoroutineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	back, path := roundTrip(t, prof)
	if len(back.Sample) != len(r.Gs) {
		t.Errorf("%d samples, want one per goroutine: %d", len(back.Sample), len(r.Gs))
	}
	reasons := map[string]int{}
	ids := map[int64]bool{}
	park := 0
	for _, s := range back.Sample {
		if s.Value[0] != 1 {
			t.Fatalf("sample of value %d", s.Value[0])
		}
		ids[s.NumLabel[pprof.LabelGoID][0]] = true
		if hasFunc(s, "main.park") {
			park++
			if !hasFunc(s, "main.descend") {
				t.Errorf("goroutine %d in main.park without main.descend", s.NumLabel[pprof.LabelGoID][0])
			}
			reasons[s.Label[pprof.LabelWaitReason][0]]++
		}
	}
	if park != parked || len(ids) != len(r.Gs) {
		t.Errorf("%d samples in main.park, %d distinct goroutine ids; want %d and %d", park, len(ids), parked, len(r.Gs))
	}
	for _, reason := range []string{"chan receive", "sync.Mutex.Lock", "select", "sync.Cond.Wait", "sleep", "sync.WaitGroup.Wait", "chan send", "sync.RWMutex.RLock"} {
		if reasons[reason] != parked/8 {
			t.Errorf("%d goroutines of main.park wait with reason %q, want %d (all: %v)", reasons[reason], reason, parked/8, reasons)
		}
	}
	top := pprofTop(t, path)
	for _, fn := range []string{"main.park", "main.descend"} {
		if top[fn] != int64(parked) {
			t.Errorf("go tool pprof -top: %s cum %d, want %d", fn, top[fn], parked)
		}
	}
	// sync.(*Mutex).Lock is inlined into main.park: one location, its
	// lines innermost first, main.park last.
	inlined := false
	for _, l := range back.Location {
		n := len(l.Line)
		if n > 1 && l.Line[n-1].Function.Name == "main.park" && l.Line[0].Function.Name != "main.park" {
			for _, ln := range l.Line[:n-1] {
				inlined = inlined || ln.Function.Name == "sync.(*Mutex).Lock"
			}
		}
	}
	if !inlined {
		t.Error("no location of main.park holds the inlined sync.(*Mutex).Lock as a line")
	}
	// The executable's mapping comes first, with its build ID, and says
	// its locations are symbolized.
	if m := back.Mapping[0]; m.File != r.Proc.Exe.Path || m.BuildID == "" || !m.HasFunctions || !m.HasInlineFrames {
		t.Errorf("first mapping %+v, want the executable %s", m, r.Proc.Exe.Path)
	}
}

// go-heap-types parks goroutines under pprof labels: the profile keeps
// them, read from the label list of Go 1.24+ and the map before.
func TestGoroutineProfileLabels(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {Go: "go1.22.12"}} {
		t.Run(v.String(), func(t *testing.T) {
			r, c := load(t, "go-heap-types", v)
			prof, err := pprof.Goroutines(r, pprof.GoroutineOptions{})
			if err != nil {
				t.Fatal(err)
			}
			back, _ := roundTrip(t, prof)
			shards := map[string]int{}
			for _, s := range back.Sample {
				if len(s.Label["role"]) == 1 && s.Label["role"][0] == "worker" {
					shards[s.Label["shard"][0]]++
				}
			}
			want := int(fixturetest.IntFact(t, c, "labelled"))
			if shards["0"]+shards["1"] != want || shards["0"] != (want+1)/2 {
				t.Errorf("labelled goroutines by shard: %v, want %d in all, %d in shard 0", shards, want, (want+1)/2)
			}
		})
	}
}

// The live heap of go-heap-types: its typed objects counted exactly, the
// ones it dropped before the collections not at all.
func TestHeapProfile(t *testing.T) {
	r, c := load(t, "go-heap-types", fixtures.Default)
	fact := func(k string) int64 { return fixturetest.IntFact(t, c, k) }
	prof, err := pprof.Heap(r)
	if err != nil {
		t.Fatal(err)
	}
	back, path := roundTrip(t, prof)
	objects, space := heapTotals(back)
	// A Node is 600 bytes plus its malloc header: the 640-byte class; a
	// Chunk fills five pages.
	if objects["main.Node"] != fact("nodes") || space["main.Node"] != 640*fact("nodes") {
		t.Errorf("main.Node: %d objects, %d bytes; want %d and %d", objects["main.Node"], space["main.Node"], fact("nodes"), 640*fact("nodes"))
	}
	if objects["main.Chunk"] != fact("chunks") || space["main.Chunk"] != 40960*fact("chunks") {
		t.Errorf("main.Chunk: %d objects, %d bytes; want %d and %d", objects["main.Chunk"], space["main.Chunk"], fact("chunks"), 40960*fact("chunks"))
	}
	// The 5000-byte buffers fill the 5376-byte class, which the runtime
	// does not use.
	if objects["noscan 5376 B"] != fact("buffers") || space["noscan 5376 B"] != 5376*fact("buffers") {
		t.Errorf("noscan 5376 B: %d objects, %d bytes; want the %d buffers", objects["noscan 5376 B"], space["noscan 5376 B"], fact("buffers"))
	}
	checkHeapLive(t, r, back)
	top := pprofTop(t, path, "-sample_index=inuse_objects")
	if top["main.Node"] != fact("nodes") || top["main.Chunk"] != fact("chunks") || top["noscan 5376 B"] != fact("buffers") {
		t.Errorf("go tool pprof -top -sample_index=inuse_objects: main.Node %d, main.Chunk %d, noscan 5376 B %d; want %d, %d and %d",
			top["main.Node"], top["main.Chunk"], top["noscan 5376 B"], fact("nodes"), fact("chunks"), fact("buffers"))
	}
}

// Go 1.21 records no types: objects are counted by size class, the
// Nodes among the 640-byte scan objects, the Chunks as large 40960-byte
// scan objects.
func TestHeapProfileSizeClasses(t *testing.T) {
	r, c := load(t, "go-heap-types", fixtures.Variant{Go: "go1.21.13"})
	nodes, chunks := fixturetest.IntFact(t, c, "nodes"), fixturetest.IntFact(t, c, "chunks")
	prof, err := pprof.Heap(r)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := roundTrip(t, prof)
	objects := map[string]int64{}
	for _, s := range back.Sample {
		if len(s.Location) != 1 {
			t.Errorf("go1.21 sample with a type: %v", s.Location[0].Line[0].Function.Name)
		}
		objects[s.Location[0].Line[0].Function.Name] += s.Value[0]
	}
	checkHeapLive(t, r, back)
	if objects["large scan 40960 B"] != chunks {
		t.Errorf("large scan 40960 B: %d objects, want the %d chunks", objects["large scan 40960 B"], chunks)
	}
	if objects["noscan 5376 B"] != fixturetest.IntFact(t, c, "buffers") {
		t.Errorf("noscan 5376 B: %d objects, want the %s buffers", objects["noscan 5376 B"], c.Oracle.Facts["buffers"][0])
	}
	// Nodes (600 bytes, no header before Go 1.22) are in the 640-byte
	// class with whatever else the runtime allocated there.
	if n := objects["scan 640 B"]; n < nodes || n > nodes+64 {
		t.Errorf("scan 640 B: %d objects, want the %d nodes and few others", n, nodes)
	}
}

// go-big-heap's typed objects are counted exactly among its mixed heap.
func TestHeapProfileMixed(t *testing.T) {
	r, c := load(t, "go-big-heap", fixtures.Default)
	prof, err := pprof.Heap(r)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := roundTrip(t, prof)
	objects, space := heapTotals(back)
	fact := func(k string) int64 { return fixturetest.IntFact(t, c, k) }
	// An Item and its header fill the 1152-byte class; a Blob 8 pages.
	for _, w := range []struct {
		typ   string
		n     int64
		class int64
	}{{"main.Item", fact("items"), 1152}, {"main.Blob", fact("blobs"), 65536}} {
		if w.n == 0 || objects[w.typ] != w.n || space[w.typ] != w.n*w.class {
			t.Errorf("%s: %d objects, %d bytes; want %d of %d bytes", w.typ, objects[w.typ], space[w.typ], w.n, w.class)
		}
	}
	if n := objects["noscan 1024 B"]; n < fact("buffers") {
		t.Errorf("noscan 1024 B: %d objects, want at least the %d buffers", n, fact("buffers"))
	}
	checkHeapLive(t, r, back)
}

// checkHeapLive compares the profile's bytes with the runtime's own count
// of live bytes, gcController.heapLive: the bytes the last collection
// marked plus those allocated since, counting every free slot of the spans
// cached in the mcaches as allocated (runtime/mcache.go, refill). The
// scan finds as many bytes, less those free slots.
func checkHeapLive(t *testing.T, r *goruntime.Runtime, prof *profile.Profile) {
	t.Helper()
	var scanned int64
	for _, s := range prof.Sample {
		scanned += s.Value[1]
	}
	for _, tot := range r.HeapTotals() {
		if tot.Source == "runtime.gcController.heapLive" {
			t.Logf("scanned %d bytes, heapLive %d", scanned, tot.Bytes)
			if d := int64(tot.Bytes) - scanned; d < 0 || d > 2<<20 {
				t.Errorf("scanned %d live bytes, the runtime's heapLive is %d", scanned, tot.Bytes)
			}
			return
		}
	}
	t.Error("no heapLive among the runtime's heap totals")
}

// go-heap-unswept dies after a collection marked the heap and before the
// sweeper reached most spans: the objects it dropped are garbage only by
// the mark bits, and are not counted. Without symbols the types are named
// all the same.
func TestHeapProfileUnswept(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {Strip: true}} {
		t.Run(v.String(), func(t *testing.T) {
			r, c := load(t, "go-heap-unswept", v)
			fact := func(k string) int64 { return fixturetest.IntFact(t, c, k) }
			prof, err := pprof.Heap(r)
			if err != nil {
				t.Fatal(err)
			}
			back, path := roundTrip(t, prof)
			objects, _ := heapTotals(back)
			if objects["main.Node"] != fact("nodes") || objects["main.Chunk"] != fact("chunks") {
				t.Errorf("main.Node %d, main.Chunk %d; want %d and %d", objects["main.Node"], objects["main.Chunk"], fact("nodes"), fact("chunks"))
			}
			if n := objects["scan 416 B"]; n < fact("small") || n > fact("small")+32 {
				t.Errorf("scan 416 B: %d objects, want the %d kept and few others (%d dropped)", n, fact("small"), fact("dropped"))
			}
			top := pprofTop(t, path, "-sample_index=inuse_objects")
			if top["main.Node"] != fact("nodes") || top["main.Chunk"] != fact("chunks") {
				t.Errorf("go tool pprof -top: main.Node %d, main.Chunk %d; want %d and %d", top["main.Node"], top["main.Chunk"], fact("nodes"), fact("chunks"))
			}
			if !r.Binary.Stripped { // HeapTotals needs runtime.gcController by symbol
				checkHeapLive(t, r, back)
			}
			comments := strings.Join(back.Comments, "\n")
			if !strings.Contains(comments, "spans were not swept since the last collection") || strings.Contains(comments, "unreadable") {
				t.Errorf("comments:\n%s", comments)
			}
		})
	}
}
