package goruntime

import (
	"errors"
	"fmt"
)

// Limits of a heap walk; the span list and bitmaps are target memory.
const (
	// maxHeapSpans bounds mheap_.allspans: 2^27 spans of one 8 KiB page
	// are a 1 TiB heap.
	maxHeapSpans = 1 << 27
	// maxHeapArenas bounds mheap_.allArenas (64 MiB each: 64 TiB).
	maxHeapArenas = 1 << 20
	// spanListChunk is how many span pointers a walk reads at once.
	spanListChunk = 8192
	// maxWalkProblems bounds the problems a walk describes one by one;
	// the rest are only counted.
	maxWalkProblems = 16
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
	// last collection: their unmarked objects are garbage.
	Unswept int
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
// unreadable), and in each span in use takes the objects below freeindex
// and those whose allocation bit is set, the way the runtime's allocator
// and sweeper read them. In a span not yet swept since the last
// collection, an allocated object without a mark bit is garbage and is
// counted, not reported. Objects allocated since the last collection are
// reported whether or not anything still references them: only a
// collection could tell. Progress is reported as "heap spans".
func (h *Heap) Walk(fn func(*HeapObject)) (*HeapWalk, error) {
	w := &HeapWalk{}
	list, err := h.spanList(w)
	if err != nil {
		return nil, err
	}
	hw := heapWalker{h: h, w: w, fn: fn, buf: make([]byte, h.span.size), seen: map[uint64]bool{}}
	total := list.count
	defer h.p.Progress("heap spans", total, total)
	done := 0
	err = list.each(func(addr uint64) {
		if done%progressEvery == 0 {
			h.p.Progress("heap spans", done, total)
		}
		done++
		hw.span(addr)
	})
	return w, err
}

// spanSource lists span addresses.
type spanSource struct {
	count int
	each  func(func(uint64)) error
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
		return spanSource{count: int(n), each: func(f func(uint64)) error {
			return h.eachWord(ptr, n, "runtime.mheap_.allspans", w, f)
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
	w.Source = "span maps of runtime.mheap_.allArenas"
	w.problem("%v: spans listed from the arenas' span maps", errAll)
	// The count is of arenas: each holds pagesPerArena spans at most.
	return spanSource{count: int(n), each: func(f func(uint64)) error {
		seen := map[uint64]bool{}
		page := make([]byte, h.pagesPerArena*8)
		return h.eachWord(ptr, n, "runtime.mheap_.allArenas", w, func(ri uint64) {
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
					f(s)
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
	seen       map[uint64]bool
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
	if hw.seen[uint64(s.Start)] {
		w.problem("two spans claim the pages at %#x (mspan %#x): the second is skipped", uint64(s.Start), addr)
		return
	}
	hw.seen[uint64(s.Start)] = true
	w.InUse++
	spanBytes := s.NPages * h.pageSize
	if s.ElemSize == 0 || s.ElemSize > spanBytes || s.NElems > spanBytes/s.ElemSize {
		w.problem("mspan %#x in use with %d objects of %d bytes in %d pages: not believed", addr, s.NElems, s.ElemSize, s.NPages)
		return
	}
	if s.Unswept {
		w.Unswept++
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
		if _, err := h.p.ReadMemory(hw.mark, uint64(s.MarkBits)); err == nil && s.MarkBits != 0 {
			markOK = true
		} else {
			w.problem("mark bits of unswept mspan %#x: %v: its objects count as live", addr, orNoBitmap(err))
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
	if allocOK && !s.Unswept && h.sweepgen != 0 && (s.Sweepgen == h.sweepgen || s.Sweepgen == h.sweepgen+3) &&
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
