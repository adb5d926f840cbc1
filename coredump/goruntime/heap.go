package goruntime

import (
	"errors"
	"fmt"
	"sync"

	"github.com/coreexplain/coreexplain/coredump"
)

// Heap reads the Go heap's metadata (runtime.mheap_) of a process: which
// arena, span and object an address falls in, and whether that object is
// allocated. Every field offset comes from the binary's Layout; the heap
// geometry (arena size, page size, address offset) from its DWARF
// constants, with the values every Go release from 1.20 to 1.26 uses on
// 64-bit Linux as the fallback for binaries without them.
type Heap struct {
	p   *coredump.Process
	bin *Binary

	arenaBaseOffset uint64
	logArenaBytes   uint
	l1Bits, l2Bits  uint
	pageSize        uint64
	pagesPerArena   uint64
	l1Len           uint64

	mheap     uint64 // address of runtime.mheap_
	sweepgen  uint32 // mheap_.sweepgen
	arenasOff int64  // mheap.arenas
	spansOff  int64  // heapArena.spans
	span      spanLayout

	types    typeNamer
	stateVal map[int64]SpanState
	inline   inlineMarks // Green Tea's per-span mark bits, when the binary has them

	mu     sync.Mutex
	l2     map[uint64]uint64 // L1 index -> address of the L2 array
	arenas map[uint64]uint64 // arena index -> *heapArena (0 = none)
	spans  map[uint64]*Span  // mspan address -> decoded span
}

// spanLayout holds the mspan fields the reader decodes, with their sizes
// (freeindex and nelems shrank from uintptr to uint16 in Go 1.22).
type spanLayout struct {
	size                                       int64
	startAddr, npages, freeindex, nelems       fieldAt
	allocBits, gcmarkBits, sweepgen, spanclass fieldAt
	state, elemsize, limit, largeType, divMul  fieldAt
	allocCount                                 fieldAt
}

type fieldAt struct {
	off, size int64
	ok        bool
}

// Default heap geometry of linux/amd64 and linux/arm64, Go 1.20-1.26
// (runtime/malloc.go), for binaries whose DWARF lacks the constants.
const (
	defaultArenaBaseOffset = 0xffff800000000000
	defaultLogArenaBytes   = 26
	defaultArenaL1Bits     = 0
	defaultArenaL2Bits     = 22
	defaultPageSize        = 8192
	// maxHeapSpanBytes bounds a span's size (npages × pageSize) before it
	// is believed: a span never exceeds the address space of the heap.
	maxHeapSpanBytes = 1 << 40
)

// SpanState is an mspan's state (runtime.mSpanState).
type SpanState uint8

const (
	// SpanDead: the span is free (its pages are idle or released).
	SpanDead SpanState = iota
	// SpanInUse: the span holds heap objects.
	SpanInUse
	// SpanManual: the span was allocated manually: goroutine stacks, and
	// other runtime-internal memory.
	SpanManual
	// SpanStateUnknown: the state byte holds a value this reader does not
	// know.
	SpanStateUnknown
)

var spanStateNames = [...]string{SpanDead: "dead", SpanInUse: "in-use", SpanManual: "manual", SpanStateUnknown: "unknown"}

func (s SpanState) String() string {
	if int(s) < len(spanStateNames) {
		return spanStateNames[s]
	}
	return fmt.Sprintf("SpanState(%d)", uint8(s))
}

// MarshalText writes the state by name.
func (s SpanState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Span is one decoded mspan.
type Span struct {
	Addr      coredump.Addr `json:"addr"` // of the mspan struct
	Start     coredump.Addr `json:"start"`
	NPages    uint64        `json:"npages"`
	State     SpanState     `json:"state"`
	StateRaw  uint8         `json:"-"`
	ElemSize  uint64        `json:"elem_size"`
	SpanClass uint8         `json:"span_class"`
	// SizeClass is SpanClass>>1; 0 means a large object (one per span).
	SizeClass uint8 `json:"size_class"`
	// NoScan spans hold objects without pointers.
	NoScan     bool          `json:"noscan"`
	FreeIndex  uint64        `json:"free_index"`
	NElems     uint64        `json:"nelems"`
	AllocCount uint64        `json:"alloc_count"`
	Limit      coredump.Addr `json:"limit"`
	AllocBits  coredump.Addr `json:"alloc_bits"`
	MarkBits   coredump.Addr `json:"mark_bits"`
	Sweepgen   uint32        `json:"sweepgen"`
	// Unswept reports that the GC finished a cycle that the span has not
	// been swept for yet: its allocation bits are from the cycle before,
	// and objects without a mark bit are garbage waiting to be freed.
	Unswept   bool          `json:"unswept,omitempty"`
	LargeType coredump.Addr `json:"large_type,omitempty"`

	end uint64
}

// End is the first address past the span's pages.
func (s *Span) End() uint64 { return s.end }

// ObjectState says whether a heap object is live as far as the runtime
// knows.
type ObjectState uint8

const (
	// ObjectAllocated: the slot holds an allocated object.
	ObjectAllocated ObjectState = iota + 1
	// ObjectFree: the slot is free: never allocated, or freed by the GC.
	ObjectFree
	// ObjectGarbage: the slot is still allocated, but the last GC did not
	// mark it and the span is not swept yet: it will be freed.
	ObjectGarbage
	// ObjectSpanTail: the address lies past the last object of the span
	// (unused tail, or the span's inline mark bits).
	ObjectSpanTail
	// ObjectFreePage: the page belongs to no span in use: a dead span's
	// page, or an idle page of the arena.
	ObjectFreePage
	// ObjectStack: the address lies in a manually managed span (a goroutine
	// stack or runtime-internal memory); stack owners are decided by the
	// caller, which knows the goroutines.
	ObjectStack
)

var objectStateNames = [...]string{ObjectAllocated: "allocated", ObjectFree: "free", ObjectGarbage: "garbage",
	ObjectSpanTail: "span-tail", ObjectFreePage: "free-page", ObjectStack: "manual-span"}

func (s ObjectState) String() string {
	if int(s) < len(objectStateNames) && objectStateNames[s] != "" {
		return objectStateNames[s]
	}
	return fmt.Sprintf("ObjectState(%d)", uint8(s))
}

// MarshalText writes the state by name.
func (s ObjectState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// HeapAddr is where an address lies in the Go heap.
type HeapAddr struct {
	Addr      coredump.Addr `json:"addr"`
	Arena     coredump.Addr `json:"arena"`      // start of the 64 MiB arena
	ArenaMeta coredump.Addr `json:"arena_meta"` // the arena's heapArena struct
	// Span is nil when the arena's page was never part of a span.
	Span  *Span       `json:"span,omitempty"`
	State ObjectState `json:"state"`
	// Object, Offset and Index locate the object slot holding Addr, for
	// spans in use.
	Object coredump.Addr `json:"object,omitempty"`
	Offset uint64        `json:"offset"`
	Index  uint64        `json:"index"`
	// Type names the object's type when the runtime records it (Go 1.22+:
	// malloc headers of scan objects over 512 bytes, and large objects);
	// TypeAddr is the *abi.Type it was read from.
	Type     string        `json:"type,omitempty"`
	TypeAddr coredump.Addr `json:"type_addr,omitempty"`
	// DataStart is where the object's user data begins: Object, or
	// Object+8 when a malloc header precedes it.
	DataStart coredump.Addr `json:"data_start,omitempty"`
	// Marked reports the object's mark bit from the last GC cycle, for
	// unswept spans.
	Marked bool `json:"marked,omitempty"`
}

// Live reports whether the object at the address is allocated and not
// known to be garbage.
func (h *HeapAddr) Live() bool { return h.State == ObjectAllocated }

// NewHeap prepares a reader of the process's Go heap.
func NewHeap(p *coredump.Process, bin *Binary) (*Heap, error) {
	if bin == nil || bin.Layout == nil {
		return nil, errors.New("go heap: no Go binary")
	}
	l := bin.Layout
	h := &Heap{p: p, bin: bin, l2: map[uint64]uint64{}, arenas: map[uint64]uint64{}, spans: map[uint64]*Span{}}
	cst := func(name string, def int64) int64 {
		if v, ok := l.Const("runtime." + name); ok {
			return v
		}
		return def
	}
	h.arenaBaseOffset = uint64(cst("arenaBaseOffsetUintptr", cst("arenaBaseOffset", int64(-0x800000000000))))
	h.logArenaBytes = uint(cst("logHeapArenaBytes", defaultLogArenaBytes))
	h.l1Bits = uint(cst("arenaL1Bits", defaultArenaL1Bits))
	h.l2Bits = uint(cst("arenaL2Bits", defaultArenaL2Bits))
	h.pageSize = uint64(cst("pageSize", cst("_PageSize", defaultPageSize)))
	if h.logArenaBytes < 16 || h.logArenaBytes > 40 || h.pageSize == 0 || h.pageSize&(h.pageSize-1) != 0 ||
		h.l2Bits > 32 || h.l1Bits > 16 {
		return nil, fmt.Errorf("go heap: implausible heap geometry (arena 2^%d, page %d, L1 %d bits, L2 %d bits)",
			h.logArenaBytes, h.pageSize, h.l1Bits, h.l2Bits)
	}
	h.pagesPerArena = (1 << h.logArenaBytes) / h.pageSize
	h.l1Len = 1 << h.l1Bits

	addr, ok := bin.Symbol("runtime.mheap_")
	if !ok {
		return nil, errors.New("go heap: the binary has no runtime.mheap_ symbol (stripped with -s)")
	}
	h.mheap = addr
	mh, err := l.Struct("runtime.mheap")
	if err != nil {
		return nil, fmt.Errorf("go heap: %w", err)
	}
	f, err := mh.Field("arenas")
	if err != nil {
		return nil, fmt.Errorf("go heap: %w", err)
	}
	if f.Size != int64(h.l1Len)*8 {
		return nil, fmt.Errorf("go heap: mheap.arenas is %d bytes, want %d for %d L1 entries", f.Size, h.l1Len*8, h.l1Len)
	}
	h.arenasOff = f.Offset
	if sg, err := mh.Field("sweepgen"); err == nil {
		if v, err := p.ReadUint32(addr + uint64(sg.Offset)); err == nil {
			h.sweepgen = v
		}
	}
	if h.spansOff, err = l.Off("runtime.heapArena", "spans"); err != nil {
		return nil, fmt.Errorf("go heap: %w", err)
	}
	if err := h.span.load(l); err != nil {
		return nil, fmt.Errorf("go heap: %w", err)
	}
	h.stateVal = map[int64]SpanState{}
	for name, s := range map[string]SpanState{"mSpanDead": SpanDead, "mSpanInUse": SpanInUse, "mSpanManual": SpanManual} {
		h.stateVal[cst(name, int64(s))] = s
	}
	h.types = newTypeNamer(p, bin)
	h.inline = newInlineMarks(bin)
	return h, nil
}

func (sl *spanLayout) load(l *Layout) error {
	s, err := l.Struct("runtime.mspan")
	if err != nil {
		return err
	}
	sl.size = s.Size
	get := func(name string, required bool) (fieldAt, error) {
		f, err := s.Field(name)
		if err != nil {
			if required {
				return fieldAt{}, err
			}
			return fieldAt{}, nil
		}
		return fieldAt{off: f.Offset, size: f.Size, ok: true}, nil
	}
	for _, x := range []struct {
		dst      *fieldAt
		name     string
		required bool
	}{
		{&sl.startAddr, "startAddr", true}, {&sl.npages, "npages", true}, {&sl.freeindex, "freeindex", true},
		{&sl.nelems, "nelems", true}, {&sl.allocBits, "allocBits", true}, {&sl.gcmarkBits, "gcmarkBits", false},
		{&sl.sweepgen, "sweepgen", false}, {&sl.spanclass, "spanclass", true}, {&sl.state, "state", true},
		{&sl.elemsize, "elemsize", true}, {&sl.limit, "limit", true}, {&sl.largeType, "largeType", false},
		{&sl.divMul, "divMul", false}, {&sl.allocCount, "allocCount", false},
	} {
		if *x.dst, err = get(x.name, x.required); err != nil {
			return err
		}
	}
	if sl.size <= 0 || sl.size > 4096 {
		return fmt.Errorf("runtime.mspan is %d bytes", sl.size)
	}
	return nil
}

func (f fieldAt) read(b []byte) uint64 {
	if !f.ok || f.off < 0 || f.off+f.size > int64(len(b)) {
		return 0
	}
	var v uint64
	for i := f.size - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[f.off+i])
	}
	return v
}

// PageSize is the runtime's page size (8 KiB).
func (h *Heap) PageSize() uint64 { return h.pageSize }

// ArenaBytes is the size of one heap arena (64 MiB).
func (h *Heap) ArenaBytes() uint64 { return 1 << h.logArenaBytes }

// arenaIndex is the runtime's arenaIndex(p).
func (h *Heap) arenaIndex(addr uint64) uint64 { return (addr - h.arenaBaseOffset) >> h.logArenaBytes }

func (h *Heap) arenaStart(ri uint64) uint64 { return ri<<h.logArenaBytes + h.arenaBaseOffset }

// arena returns the heapArena of arena index ri, 0 when the arena is not
// part of the heap.
func (h *Heap) arena(ri uint64) (uint64, error) {
	h.mu.Lock()
	if a, ok := h.arenas[ri]; ok {
		h.mu.Unlock()
		return a, nil
	}
	h.mu.Unlock()
	l1 := uint64(0)
	if h.l1Bits > 0 {
		l1 = ri >> h.l2Bits
	}
	if l1 >= h.l1Len {
		return 0, nil
	}
	l2 := ri & (1<<h.l2Bits - 1)
	h.mu.Lock()
	l2arr, ok := h.l2[l1]
	h.mu.Unlock()
	if !ok {
		v, err := h.p.ReadUint64(h.mheap + uint64(h.arenasOff) + l1*8)
		if err != nil {
			return 0, fmt.Errorf("go heap: mheap_.arenas[%d]: %w", l1, err)
		}
		l2arr = v
		h.mu.Lock()
		h.l2[l1] = v
		h.mu.Unlock()
	}
	if l2arr == 0 {
		return 0, nil
	}
	a, err := h.p.ReadUint64(l2arr + l2*8)
	if err != nil {
		// The L2 array is a sparse 32 MiB reservation: pages never touched
		// are not in the core, and mean "no arena".
		if me, ok := coredump.AsMemoryError(err); ok && me.Reason == coredump.NotDumped {
			a = 0
		} else {
			return 0, fmt.Errorf("go heap: arena L2 entry %d: %w", l2, err)
		}
	}
	h.mu.Lock()
	h.arenas[ri] = a
	h.mu.Unlock()
	return a, nil
}

// Contains reports whether addr lies in a Go heap arena.
func (h *Heap) Contains(addr uint64) bool {
	a, err := h.arena(h.arenaIndex(addr))
	return err == nil && a != 0
}

// SpanOf returns the span whose spans[] entry covers addr's page; nil when
// the page was never used. The span may be stale (dead, or not covering
// addr); Lookup interprets it.
func (h *Heap) SpanOf(addr uint64) (*Span, error) {
	ha, err := h.arena(h.arenaIndex(addr))
	if err != nil || ha == 0 {
		return nil, err
	}
	page := (addr / h.pageSize) % h.pagesPerArena
	sp, err := h.p.ReadUint64(ha + uint64(h.spansOff) + page*8)
	if err != nil {
		return nil, fmt.Errorf("go heap: heapArena.spans[%d] at %#x: %w", page, ha+uint64(h.spansOff)+page*8, err)
	}
	if sp == 0 {
		return nil, nil
	}
	return h.Span(sp)
}

// Span decodes the mspan at addr.
func (h *Heap) Span(addr uint64) (*Span, error) {
	h.mu.Lock()
	if s, ok := h.spans[addr]; ok {
		h.mu.Unlock()
		return s, nil
	}
	h.mu.Unlock()
	s := &Span{}
	if err := h.decodeSpan(s, addr, make([]byte, h.span.size)); err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.spans[addr] = s
	h.mu.Unlock()
	return s, nil
}

// decodeSpan reads the mspan at addr into s, with buf (h.span.size bytes)
// as scratch space.
func (h *Heap) decodeSpan(s *Span, addr uint64, b []byte) error {
	if _, err := h.p.ReadMemory(b, addr); err != nil {
		return fmt.Errorf("go heap: mspan at %#x: %w", addr, err)
	}
	l := &h.span
	*s = Span{
		Addr:       coredump.Addr(addr),
		Start:      coredump.Addr(l.startAddr.read(b)),
		NPages:     l.npages.read(b),
		StateRaw:   uint8(l.state.read(b)),
		ElemSize:   l.elemsize.read(b),
		SpanClass:  uint8(l.spanclass.read(b)),
		FreeIndex:  l.freeindex.read(b),
		NElems:     l.nelems.read(b),
		AllocCount: l.allocCount.read(b),
		Limit:      coredump.Addr(l.limit.read(b)),
		AllocBits:  coredump.Addr(l.allocBits.read(b)),
		MarkBits:   coredump.Addr(l.gcmarkBits.read(b)),
		Sweepgen:   uint32(l.sweepgen.read(b)),
		LargeType:  coredump.Addr(l.largeType.read(b)),
	}
	s.SizeClass, s.NoScan = s.SpanClass>>1, s.SpanClass&1 != 0
	if st, ok := h.stateVal[int64(s.StateRaw)]; ok {
		s.State = st
	} else {
		s.State = SpanStateUnknown
	}
	// The runtime's sweep generations (mheap.go, mspan.sweepgen): h-2
	// means the span needs sweeping in this cycle, h+1 that it was cached
	// in an mcache before the sweep began and still needs sweeping.
	s.Unswept = h.sweepgen != 0 && (s.Sweepgen == h.sweepgen-2 || s.Sweepgen == h.sweepgen+1) && s.State == SpanInUse
	if s.NPages > maxHeapSpanBytes/h.pageSize {
		return fmt.Errorf("go heap: mspan at %#x claims %d pages", addr, s.NPages)
	}
	s.end = uint64(s.Start) + s.NPages*h.pageSize
	return nil
}

// Lookup says where addr lies in the Go heap; ok is false when it lies in
// no heap arena.
func (h *Heap) Lookup(addr uint64) (ha *HeapAddr, ok bool, err error) {
	ri := h.arenaIndex(addr)
	meta, err := h.arena(ri)
	if err != nil {
		return nil, false, err
	}
	if meta == 0 {
		return nil, false, nil
	}
	out := &HeapAddr{Addr: coredump.Addr(addr), Arena: coredump.Addr(h.arenaStart(ri)), ArenaMeta: coredump.Addr(meta)}
	s, err := h.SpanOf(addr)
	if err != nil {
		return out, true, err
	}
	if s == nil || addr < uint64(s.Start) || addr >= s.End() || s.State == SpanDead {
		// spans[] entries of freed pages are left stale.
		out.State = ObjectFreePage
		if s != nil && addr >= uint64(s.Start) && addr < s.End() {
			out.Span = s
		}
		return out, true, nil
	}
	out.Span = s
	switch s.State {
	case SpanManual:
		out.State = ObjectStack
		return out, true, nil
	case SpanInUse:
	default:
		return out, true, fmt.Errorf("go heap: span at %#x has unknown state %d", uint64(s.Addr), s.StateRaw)
	}
	if s.ElemSize == 0 {
		return out, true, fmt.Errorf("go heap: span at %#x in use with element size 0", uint64(s.Addr))
	}
	off := addr - uint64(s.Start)
	idx := off / s.ElemSize
	if (s.Limit != 0 && addr >= uint64(s.Limit)) || idx >= s.NElems {
		out.State = ObjectSpanTail
		return out, true, nil
	}
	out.Index = idx
	out.Object = coredump.Addr(uint64(s.Start) + idx*s.ElemSize)
	out.Offset = addr - uint64(out.Object)
	out.DataStart = out.Object
	alloc, err := h.bit(uint64(s.AllocBits), idx)
	if err != nil {
		return out, true, fmt.Errorf("go heap: allocBits of span %#x: %w", uint64(s.Addr), err)
	}
	out.State = ObjectFree
	if idx < s.FreeIndex || alloc {
		out.State = ObjectAllocated
	}
	if s.Unswept && out.State == ObjectAllocated {
		if marked, err := h.marked(s, idx); err == nil {
			out.Marked = marked
			if !marked {
				out.State = ObjectGarbage
			}
		}
	}
	h.objectType(out, s)
	return out, true, nil
}

func (h *Heap) bit(bits uint64, idx uint64) (bool, error) {
	if bits == 0 {
		return false, errors.New("no bitmap")
	}
	var b [1]byte
	if _, err := h.p.ReadMemory(b[:], bits+idx/8); err != nil {
		return false, err
	}
	return b[0]&(1<<(idx%8)) != 0, nil
}

// objectType fills in the type the runtime records for the object (see
// typeRecordOf).
func (h *Heap) objectType(out *HeapAddr, s *Span) {
	var typ uint64
	switch h.typeRecordOf(s) {
	case typeInSpan:
		typ = uint64(s.LargeType)
	case typeInHeader:
		v, err := h.p.ReadUint64(uint64(out.Object))
		if err != nil || v == 0 {
			return
		}
		typ = v
		out.DataStart = out.Object + 8
	}
	if typ == 0 {
		return
	}
	if name, err := h.types.name(typ); err == nil {
		out.Type, out.TypeAddr = name, coredump.Addr(typ)
	}
}

// typeRecord says where the runtime records the types of a span's objects.
type typeRecord uint8

const (
	typeNowhere  typeRecord = iota // small or noscan objects, Go 1.21 and earlier
	typeInSpan                     // mspan.largeType: the span's one large object
	typeInHeader                   // a malloc header: the object's first word
)

// typeRecordOf says where the types of s's objects are: Go 1.22+ keeps a
// *abi.Type in a malloc header at the start of scan objects bigger than
// minSizeForMallocHeader, and in mspan.largeType for large objects
// (runtime/mbitmap.go). Objects of Go 1.21 and earlier, noscan objects and
// small objects have no type record.
func (h *Heap) typeRecordOf(s *Span) typeRecord {
	if s.NoScan || !h.bin.Version.AtLeast(22) {
		return typeNowhere
	}
	if s.SizeClass == 0 {
		return typeInSpan
	}
	if s.ElemSize <= h.minHeaderSize() {
		return typeNowhere
	}
	return typeInHeader
}

// minHeaderSize is runtime.minSizeForMallocHeader: scan objects above it
// carry a malloc header.
func (h *Heap) minHeaderSize() uint64 {
	if v, ok := h.bin.Layout.Const("runtime.minSizeForMallocHeader"); ok && v > 0 {
		return uint64(v)
	}
	return 512
}

// TypeName names the runtime type descriptor (*abi.Type) at addr.
func (h *Heap) TypeName(addr uint64) (string, error) { return h.types.name(addr) }

// typeNamer reads the names of runtime type descriptors: abi.Type.Str is an
// offset from the types section of the module the type belongs to
// (runtime.resolveNameOff).
type typeNamer struct {
	p       *coredump.Process
	strOff  fieldAt
	tflag   fieldAt
	extra   uint8 // TFlagExtraStar
	modules [][2]uint64
	err     error
}

func newTypeNamer(p *coredump.Process, bin *Binary) typeNamer {
	tn := typeNamer{p: p, extra: 2}
	l := bin.Layout
	st, err := l.Struct("internal/abi.Type")
	if err != nil {
		st, err = l.Struct("runtime._type")
	}
	if err != nil {
		tn.err = err
		return tn
	}
	for _, x := range []struct {
		dst   *fieldAt
		names []string
	}{{&tn.strOff, []string{"Str", "str"}}, {&tn.tflag, []string{"TFlag", "tflag"}}} {
		for _, n := range x.names {
			if f, err := st.Field(n); err == nil {
				*x.dst = fieldAt{off: f.Offset, size: f.Size, ok: true}
				break
			}
		}
	}
	if v, ok := l.Const("internal/abi.TFlagExtraStar"); ok {
		tn.extra = uint8(v)
	}
	md, err := l.Struct("runtime.moduledata")
	if err != nil {
		tn.err = err
		return tn
	}
	typesF, err1 := md.Field("types")
	etypesF, err2 := md.Field("etypes")
	nextF, err3 := md.Field("next")
	first, ok := bin.Symbol("runtime.firstmoduledata")
	if err1 != nil || err2 != nil || err3 != nil || !ok {
		tn.err = errors.New("no runtime.firstmoduledata")
		return tn
	}
	seen := map[uint64]bool{}
	for m := first; m != 0 && !seen[m] && len(tn.modules) < 64; {
		seen[m] = true
		t, e1 := p.ReadUint64(m + uint64(typesF.Offset))
		et, e2 := p.ReadUint64(m + uint64(etypesF.Offset))
		if e1 != nil || e2 != nil {
			break
		}
		tn.modules = append(tn.modules, [2]uint64{t, et})
		next, err := p.ReadUint64(m + uint64(nextF.Offset))
		if err != nil {
			break
		}
		m = next
	}
	return tn
}

func (tn *typeNamer) name(typ uint64) (string, error) {
	if tn.err != nil {
		return "", tn.err
	}
	if !tn.strOff.ok {
		return "", errors.New("abi.Type has no Str field")
	}
	var base uint64
	for _, m := range tn.modules {
		if typ >= m[0] && typ < m[1] {
			base = m[0]
			break
		}
	}
	if base == 0 {
		return "", fmt.Errorf("%#x is not a type descriptor of any module", typ)
	}
	b := make([]byte, tn.strOff.off+tn.strOff.size)
	if _, err := tn.p.ReadMemory(b, typ); err != nil {
		return "", err
	}
	off := int32(uint32(tn.strOff.read(b)))
	tflag := uint8(tn.tflag.read(b))
	// abi.Name: one flag byte, a varint length, the bytes.
	var hdr [11]byte
	at := uint64(int64(base) + int64(off))
	if _, err := tn.p.ReadMemory(hdr[:], at); err != nil {
		return "", err
	}
	n, w := uint64(0), 0
	for i := 1; i < len(hdr); i++ {
		n |= uint64(hdr[i]&0x7f) << (7 * (i - 1))
		if hdr[i]&0x80 == 0 {
			w = i
			break
		}
	}
	if w == 0 || n == 0 || n > 4096 {
		return "", fmt.Errorf("type name at %#x has a bad length", at)
	}
	s := make([]byte, n)
	if _, err := tn.p.ReadMemory(s, at+1+uint64(w)); err != nil {
		return "", err
	}
	if tflag&tn.extra != 0 && len(s) > 0 && s[0] == '*' {
		s = s[1:]
	}
	return string(s), nil
}
