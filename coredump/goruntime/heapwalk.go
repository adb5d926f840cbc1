package goruntime

import (
	"errors"
	"fmt"
	"strings"
)

// Limits of a heap walk; the span list and bitmaps are target memory.
const (
	// maxHeapSpans bounds mheap_.allspans: 2^27 spans of one 8 KiB page
	// are a 1 TiB heap.
	maxHeapSpans = 1 << 27
	// maxHeapArenas bounds mheap_.allArenas (64 MiB each: 64 TiB).
	maxHeapArenas = 1 << 20
	// maxArenaPages bounds the span map of an arena read at once (8192
	// pages of 8 KiB in a 64 MiB arena on 64-bit Linux).
	maxArenaPages = 1 << 20
	// spanListChunk is how many span pointers a walk reads at once.
	spanListChunk = 8192
	// maxWalkProblems bounds the problems a walk describes one by one;
	// the rest are only counted.
	maxWalkProblems = 16
	// maxSpanObjects bounds a span's object count before its bitmaps are
	// read: mspan.nelems is a uint16 since Go 1.22, and the smallest size
	// class puts 1024 objects in a page.
	maxSpanObjects = 1 << 16
)

// HeapObject is one allocated object found by Heap.Walk.
type HeapObject struct {
	// Addr is the start of the object's slot: its malloc header when it
	// has one.
	Addr uint64
	// Size is the slot's size: the size class's, or the large object's
	// span; what the runtime's heap profile counts for it.
	Size uint64
	// Span is the object's span; it is reused from span to span, valid
	// only during the callback.
	Span *Span
	// TypeAddr is the *abi.Type the runtime recorded for the object (see
	// HeapAddr.Type), 0 when it records none; TypeUnreadable reports an
	// object whose malloc header should name it but is not in the core.
	TypeAddr       uint64
	TypeUnreadable bool
}

// HeapWalk says what a walk over the heap's spans found and what it could
// not read.
type HeapWalk struct {
	// Source is where the spans were listed: "runtime.mheap_.allspans",
	// or the arenas' span maps when that list is unreadable.
	Source string
	// Spans counts the spans listed, InUse those holding heap objects.
	Spans, InUse int
	// Manual spans hold goroutine stacks and runtime-internal memory;
	// their bytes are not heap objects.
	Manual      int
	ManualBytes uint64
	// Unswept counts in-use spans the sweeper had not reached since the
	// last collection: their unmarked objects are garbage. Sweeping counts
	// spans a thread was sweeping at the dump: their objects are counted
	// by their allocation bits alone, as the sweep may have replaced them
	// with the mark bits already.
	Unswept, Sweeping int
	// Objects and Bytes total the objects reported to the callback.
	Objects, Bytes uint64
	// Typed counts the objects reported with a recorded type.
	Typed uint64
	// Garbage and GarbageBytes count allocated objects of unswept spans
	// that the last collection did not mark: not reported, as the runtime
	// frees them at the next sweep.
	Garbage, GarbageBytes uint64
	// UnreadableSpans counts listed spans whose mspan (or arenas whose
	// span map) is not in the core.
	UnreadableSpans int
	// UnknownSlots and UnknownBytes count slots whose allocation bits are
	// not in the core: neither reported nor assumed free.
	UnknownSlots, UnknownBytes uint64
	// TypeUnreadable counts objects reported without a type because their
	// malloc header is not in the core.
	TypeUnreadable uint64
	// UnmarkedUnknown counts objects of unswept spans whose mark bits are
	// not in the core: reported as allocated.
	UnmarkedUnknown uint64
	// CountMismatch counts swept spans whose allocated objects differ from
	// the runtime's own mspan.allocCount.
	CountMismatch int
	// Problems describe what could not be read, with addresses; at most
	// maxWalkProblems, ProblemCount counts them all.
	Problems     []string
	ProblemCount int
}

func (w *HeapWalk) problem(format string, args ...any) {
	w.ProblemCount++
	if len(w.Problems) < maxWalkProblems {
		w.Problems = append(w.Problems, fmt.Sprintf(format, args...))
	}
}

// Walk calls fn for every allocated object of the Go heap: it lists the
// spans (mheap_.allspans, or the arenas' span maps when that list is
// unreadable) and takes the objects of each span in use. Progress is
// reported as "heap spans" (or "heap arenas").
//
// Which objects are live follows the runtime's own reading of a span
// (runtime/mheap.go, the mspan fields; runtime/mgcsweep.go, sweep):
//
//   - An object is allocated when its index is below freeindex or its
//     allocBits bit is set. The allocator hands out slots from freeindex
//     up (through allocCache, an inverted copy of allocBits) and only
//     advances freeindex; it never sets allocBits. Slots at or above
//     freeindex whose bit is clear are free.
//   - The sweeper makes the last collection's marks the allocation bits
//     (allocBits = gcmarkBits, freeindex = 0): in a swept span the
//     objects the collection found unreachable are already free.
//   - A span the sweeper has not reached since the last collection
//     (mspan.sweepgen is mheap_.sweepgen-2, or +1 while an mcache still
//     holds it) has allocation bits from before that collection: an
//     allocated object there is live only if the collection marked it,
//     in gcmarkBits, or with Green Tea (Go 1.25 with
//     GOEXPERIMENT=greenteagc, the default from Go 1.26) for objects of
//     16 to 512 bytes in the span's inline mark bits, which the sweeper
//     merges into gcmarkBits (mspan.moveInlineMarks). Unmarked ones are
//     counted as garbage, not reported. No object is allocated in such a
//     span before it is swept: mcentral.cacheSpan sweeps a span before
//     handing it out, and a P's mcache is flushed (prepareForSweep, which
//     sweeps what it held) when the P is acquired after the collection's
//     stop-the-world and before it allocates again.
//   - A span a thread was sweeping at the dump (sweepgen-1) may already
//     have its bits swapped: its objects are counted by allocation bits.
//
// Objects allocated since the last collection, and all objects while a
// collection is marking, are reported whether or not anything still
// references them: only a collection could tell.
func (h *Heap) Walk(fn func(*HeapObject)) (*HeapWalk, error) {
	w := &HeapWalk{}
	list, err := h.spanList(w)
	if err != nil {
		return nil, err
	}
	hw := heapWalker{h: h, w: w, fn: fn, buf: make([]byte, h.span.size), seen: map[uint64]struct{}{}}
	total, done := list.count, 0
	tick := func() {
		if done%progressEvery == 0 {
			h.p.Progress(list.unit, done, total)
		}
		done++
	}
	defer h.p.Progress(list.unit, total, total)
	err = list.each(tick, hw.span)
	return w, err
}

// spanSource lists span addresses: each calls tick once per entry of the
// list (count in all; a span, or an arena of spans) and span with every
// span's address.
type spanSource struct {
	unit  string // what is counted, for progress reports
	count int
	each  func(tick func(), span func(uint64)) error
}

// spanList lists the heap's spans from mheap_.allspans, else from the span
// maps of the arenas in mheap_.allArenas.
func (h *Heap) spanList(w *HeapWalk) (spanSource, error) {
	l := h.bin.Layout
	var errAll error
	if off, err := l.Off("runtime.mheap", "allspans"); err != nil {
		errAll = err
	} else if ptr, n, err := h.readSlice(h.mheap+uint64(off), maxHeapSpans); err != nil {
		errAll = fmt.Errorf("runtime.mheap_.allspans: %w", err)
	} else {
		w.Source = "runtime.mheap_.allspans"
		return spanSource{unit: "heap spans", count: int(n), each: func(tick func(), span func(uint64)) error {
			return h.eachWord(ptr, n, "runtime.mheap_.allspans", w, func(a uint64) {
				tick()
				span(a)
			})
		}}, nil
	}
	off, err := l.Off("runtime.mheap", "allArenas")
	if err != nil {
		return spanSource{}, fmt.Errorf("go heap: %v, and no arena list: %w", errAll, err)
	}
	ptr, n, err := h.readSlice(h.mheap+uint64(off), maxHeapArenas)
	if err != nil {
		return spanSource{}, fmt.Errorf("go heap: %v; runtime.mheap_.allArenas: %w", errAll, err)
	}
	if h.pagesPerArena > maxArenaPages {
		return spanSource{}, fmt.Errorf("go heap: %v, and arenas of %d pages are implausible", errAll, h.pagesPerArena)
	}
	w.Source = "span maps of runtime.mheap_.allArenas"
	w.problem("%v: spans listed from the arenas' span maps", errAll)
	return spanSource{unit: "heap arenas", count: int(n), each: func(tick func(), span func(uint64)) error {
		seen := map[uint64]bool{}
		page := make([]byte, h.pagesPerArena*8)
		return h.eachWord(ptr, n, "runtime.mheap_.allArenas", w, func(ri uint64) {
			tick()
			ha, err := h.arena(ri)
			if err != nil || ha == 0 {
				w.problem("arena %d (at %#x) listed in allArenas has no heapArena: %v", ri, h.arenaStart(ri), err)
				return
			}
			at := ha + uint64(h.spansOff)
			if _, err := h.p.ReadMemory(page, at); err != nil {
				w.problem("span map of the arena at %#x (heapArena.spans at %#x): %v", h.arenaStart(ri), at, err)
				w.UnreadableSpans++
				return
			}
			for i := uint64(0); i < h.pagesPerArena; i++ {
				s := le64(page[8*i:])
				if s != 0 && !seen[s] {
					seen[s] = true
					span(s)
				}
			}
		})
	}}, nil
}

// readSlice reads a slice header at addr and checks its length.
func (h *Heap) readSlice(addr uint64, max uint64) (ptr, n uint64, err error) {
	var b [16]byte
	if _, err := h.p.ReadMemory(b[:], addr); err != nil {
		return 0, 0, err
	}
	ptr, n = le64(b[:]), le64(b[8:])
	if n > max {
		return 0, 0, fmt.Errorf("length %d is implausible (more than %d)", n, max)
	}
	if n > 0 && ptr == 0 {
		return 0, 0, fmt.Errorf("nil array with length %d", n)
	}
	return ptr, n, nil
}

// eachWord calls f with the n words of the array at ptr, read in chunks.
func (h *Heap) eachWord(ptr, n uint64, what string, w *HeapWalk, f func(uint64)) error {
	buf := make([]byte, 8*min(n, spanListChunk))
	for i := uint64(0); i < n; {
		k := min(n-i, spanListChunk)
		got, err := h.p.ReadMemory(buf[:8*k], ptr+8*i)
		for j := 0; j+8 <= got; j += 8 {
			f(le64(buf[j:]))
		}
		if err != nil {
			if i == 0 && got == 0 {
				return fmt.Errorf("go heap: %s at %#x: %w", what, ptr, err)
			}
			w.problem("%s: entries from %d of %d unreadable: %v", what, i+uint64(got/8), n, err)
			return nil
		}
		i += k
	}
	return nil
}

// heapWalker holds a walk's state and scratch buffers.
type heapWalker struct {
	h          *Heap
	w          *HeapWalk
	fn         func(*HeapObject)
	buf        []byte
	bits, mark []byte
	cur        Span
	obj        HeapObject
	seen       map[uint64]struct{} // starts of the in-use spans walked
}

func (hw *heapWalker) span(addr uint64) {
	h, w, s := hw.h, hw.w, &hw.cur
	w.Spans++
	if addr == 0 {
		return
	}
	if err := h.decodeSpan(s, addr, hw.buf); err != nil {
		w.UnreadableSpans++
		w.problem("%v", err)
		return
	}
	switch s.State {
	case SpanManual:
		w.Manual++
		w.ManualBytes += s.NPages * h.pageSize
		return
	case SpanInUse:
	default:
		return
	}
	if _, dup := hw.seen[uint64(s.Start)]; dup {
		w.problem("two spans claim the pages at %#x (mspan %#x): the second is skipped", uint64(s.Start), addr)
		return
	}
	hw.seen[uint64(s.Start)] = struct{}{}
	w.InUse++
	spanBytes := s.NPages * h.pageSize
	if s.ElemSize == 0 || s.ElemSize > spanBytes || s.NElems > spanBytes/s.ElemSize || s.NElems > maxSpanObjects ||
		(s.SizeClass == 0 && s.NElems > 1) {
		w.problem("mspan %#x in use with %d objects of %d bytes in %d pages: not believed", addr, s.NElems, s.ElemSize, s.NPages)
		return
	}
	// mspan.sweepgen == mheap_.sweepgen-1: a thread is sweeping the span.
	sweeping := h.sweepgen != 0 && s.Sweepgen == h.sweepgen-1
	switch {
	case s.Unswept:
		w.Unswept++
	case sweeping:
		w.Sweeping++
	}
	n := s.NElems
	nb := (n + 7) / 8
	hw.bits = grow(hw.bits, nb)
	allocOK := true
	if _, err := h.p.ReadMemory(hw.bits, uint64(s.AllocBits)); err != nil || s.AllocBits == 0 {
		allocOK = false
		w.problem("allocation bits of mspan %#x (objects at %#x): %v", addr, uint64(s.Start), orNoBitmap(err))
	}
	markOK := false
	if s.Unswept {
		hw.mark = grow(hw.mark, nb)
		if err := h.readMarks(s, 0, hw.mark); err == nil {
			markOK = true
		} else {
			w.problem("mark bits of unswept mspan %#x: %v: its objects count as live", addr, err)
		}
	}
	rec := h.typeRecordOf(s)
	o := &hw.obj
	var allocated uint64
	for i := uint64(0); i < n; i++ {
		alloc := i < s.FreeIndex
		if !alloc {
			if !allocOK {
				w.UnknownSlots++
				w.UnknownBytes += s.ElemSize
				continue
			}
			alloc = hw.bits[i/8]&(1<<(i%8)) != 0
		}
		if !alloc {
			continue
		}
		allocated++
		if s.Unswept {
			if !markOK {
				w.UnmarkedUnknown++
			} else if hw.mark[i/8]&(1<<(i%8)) == 0 {
				w.Garbage++
				w.GarbageBytes += s.ElemSize
				continue
			}
		}
		*o = HeapObject{Addr: uint64(s.Start) + i*s.ElemSize, Size: s.ElemSize, Span: s}
		switch rec {
		case typeInSpan:
			o.TypeAddr = uint64(s.LargeType)
		case typeInHeader:
			v, err := h.p.ReadUint64(o.Addr)
			if err != nil {
				o.TypeUnreadable = true
				w.TypeUnreadable++
			}
			o.TypeAddr = v
		}
		w.Objects++
		w.Bytes += s.ElemSize
		if o.TypeAddr != 0 {
			w.Typed++
		}
		hw.fn(o)
	}
	// A swept span's allocCount is the runtime's own count of the same
	// objects: a difference means the bits were misread.
	if allocOK && h.sweepgen != 0 && (s.Sweepgen == h.sweepgen || s.Sweepgen == h.sweepgen+3) &&
		h.span.allocCount.ok && allocated != s.AllocCount {
		w.CountMismatch++
		w.problem("mspan %#x: %d objects allocated by its bits, %d by its allocCount", addr, allocated, s.AllocCount)
	}
}

func grow(b []byte, n uint64) []byte {
	if uint64(cap(b)) < n {
		return make([]byte, n)
	}
	return b[:n]
}

func orNoBitmap(err error) error {
	if err == nil {
		return errors.New("no bitmap")
	}
	return err
}

// inlineMarks is where Green Tea keeps the mark bits of one-page spans of
// objects from 16 to 512 bytes (runtime/mgcmark_greenteagc.go,
// gcUsesSpanInlineMarkBits): a spanInlineMarkBits struct at the end of the
// span's page, whose marks array holds one bit per object.
type inlineMarks struct {
	on          bool
	size        uint64 // of runtime.spanInlineMarkBits
	off, length uint64 // of its marks field
}

// spanInlineMarkBits of Go 1.25 and 1.26: {scans [63]uint8; owned uint8;
// marks [63]uint8; class uint8}, for binaries whose layout lacks it.
var defaultInlineMarks = inlineMarks{on: true, size: 128, off: 64, length: 63}

// newInlineMarks says whether bin's runtime marks small objects in their
// spans, from the DWARF of spanInlineMarkBits (an empty struct in builds
// without Green Tea), else from its version and GOEXPERIMENT.
func newInlineMarks(bin *Binary) inlineMarks {
	st, err := bin.Layout.Struct("runtime.spanInlineMarkBits")
	if err != nil || !bin.Layout.FromDWARF {
		if !greenTea(bin) {
			return inlineMarks{}
		}
		if err != nil {
			return defaultInlineMarks
		}
	}
	f, err := st.Field("marks")
	if err != nil || f.Size <= 0 || st.Size <= 0 || f.Offset+f.Size > st.Size {
		return inlineMarks{}
	}
	return inlineMarks{on: true, size: uint64(st.Size), off: uint64(f.Offset), length: uint64(f.Size)}
}

// greenTea reports whether bin was built with the Green Tea collector:
// an experiment in Go 1.25, the default from Go 1.26. The build records
// the experiments that differ from its toolchain's defaults in the
// GOEXPERIMENT setting.
func greenTea(bin *Binary) bool {
	on := bin.Version.AtLeast(26)
	if !bin.Version.AtLeast(25) || bin.BuildInfo == nil {
		return on
	}
	for _, e := range strings.Split(bin.Setting("GOEXPERIMENT"), ",") {
		switch strings.TrimSpace(e) {
		case "greenteagc":
			on = true
		case "nogreenteagc":
			on = false
		}
	}
	return on
}

// usesInlineMarks reports whether s keeps its marks in the span.
func (h *Heap) usesInlineMarks(s *Span) bool {
	return h.inline.on && s.SizeClass != 0 && s.NPages == 1 && s.ElemSize >= 16 && s.ElemSize <= h.minHeaderSize() &&
		h.inline.off+h.inline.length <= h.inline.size && h.inline.size <= h.pageSize && s.NElems <= 8*h.inline.length
}

// readMarks reads bytes first.. of the marks of the last collection of
// s's objects (one bit per object) into dst: gcmarkBits, merged with the
// span's inline mark bits where the runtime keeps them, as the sweeper
// merges them.
func (h *Heap) readMarks(s *Span, first uint64, dst []byte) error {
	if s.MarkBits == 0 {
		return errors.New("no gcmarkBits")
	}
	if _, err := h.p.ReadMemory(dst, uint64(s.MarkBits)+first); err != nil {
		return fmt.Errorf("gcmarkBits at %#x: %w", uint64(s.MarkBits), err)
	}
	if !h.usesInlineMarks(s) || first >= h.inline.length {
		return nil
	}
	// usesInlineMarks bounds the inline marks to those of one page.
	n := min(uint64(len(dst)), h.inline.length-first)
	inl := make([]byte, n)
	at := uint64(s.Start) + h.pageSize - h.inline.size + h.inline.off + first
	if _, err := h.p.ReadMemory(inl, at); err != nil {
		return fmt.Errorf("inline mark bits at %#x: %w", at, err)
	}
	for i, b := range inl {
		dst[i] |= b
	}
	return nil
}

// marked reports the mark bit of the last collection of object idx of s.
func (h *Heap) marked(s *Span, idx uint64) (bool, error) {
	var b [1]byte
	if err := h.readMarks(s, idx/8, b[:]); err != nil {
		return false, err
	}
	return b[0]&(1<<(idx%8)) != 0, nil
}

// TypeName names the runtime type descriptor (*abi.Type) at addr, e.g.
// "main.Node", from the executable's module data, which Load finds even in
// a binary without symbols (where Heap.TypeName has no
// runtime.firstmoduledata to start from).
func (r *Runtime) TypeName(addr uint64) (string, error) {
	rt := r.types.typeAt(addr)
	if rt.err != nil {
		return "", rt.err
	}
	if rt.name == "" {
		return "", fmt.Errorf("type descriptor at %#x has no name", addr)
	}
	return rt.name, nil
}
