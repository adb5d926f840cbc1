package libc

import (
	"debug/elf"
	"fmt"
)

// freeLists walks every free list once — each thread's tcache, each
// arena's fastbins and bins — and indexes the chunks by header address.
// Chunks in tcache and fastbins keep their neighbour's PREV_INUSE bit set,
// so only these lists tell them from chunks in use.
func (r *Runtime) freeLists() map[uint64]*FreeList {
	hs := r.heapState()
	if hs.lists != nil {
		return hs.lists
	}
	hs.lists = map[uint64]*FreeList{}
	budget := maxListTotal
	r.walkTcaches(hs, &budget)
	for _, ar := range hs.arenas {
		if !ar.Initialized {
			continue
		}
		for i := range nFastbins {
			head := ar.Addr + msFastbins + uint64(8*i)
			first, err := r.Proc.ReadUint64(head)
			if err != nil || first == 0 {
				continue
			}
			r.walkSingly(hs, first, 0, chunkHdr, &FreeList{Kind: ListFastbin, Bin: i, Head: head},
				fmt.Sprintf("fastbin %d of %s", i, arenaName(ar)), &budget)
		}
		for b := 1; b < nBins; b++ {
			r.walkBin(hs, ar, b, &budget)
		}
	}
	return hs.lists
}

// decodeNext undoes glibc 2.32+ safe-linking: a list pointer stored at
// address pos is kept as (pos >> 12) ^ ptr.
func decodeNext(pos, stored uint64, safe bool) uint64 {
	if safe {
		return pos>>12 ^ stored
	}
	return stored
}

// walkSingly walks a tcache bin or a fastbin, singly linked lists: from
// element x the chunk header is at x - chunkOff and the (safe-linked) next
// pointer at x + nextOff. tcache links user pointers (chunkOff 16, next at
// 0), fastbins chunk headers (chunkOff 0, fd at 16). It returns the number
// of entries walked.
func (r *Runtime) walkSingly(hs *heapState, first, chunkOff, nextOff uint64, proto *FreeList, what string, budget *int) int {
	seen := map[uint64]bool{}
	x := first
	pos := 0
	for ; x != 0; pos++ {
		if *budget <= 0 {
			r.note("malloc free lists: stopped after %d chunks", maxListTotal)
			return pos
		}
		*budget--
		if x%16 != 0 || seen[x] || pos >= maxListLen {
			why := "is misaligned"
			if seen[x] {
				why = "loops back to an earlier entry"
			} else if pos >= maxListLen {
				why = "is beyond the list length limit"
			}
			hs.listNotes = append(hs.listNotes, fmt.Sprintf("%s: entry %d (%#x) %s", what, pos, x, why))
			return pos
		}
		seen[x] = true
		l := *proto
		l.Pos = pos
		if _, dup := hs.lists[x-chunkOff]; !dup {
			hs.lists[x-chunkOff] = &l
		}
		at := x + nextOff
		stored, err := r.Proc.ReadUint64(at)
		if err != nil {
			hs.listNotes = append(hs.listNotes, fmt.Sprintf("%s: entry %d (%#x) unreadable: %v", what, pos, x, err))
			return pos + 1
		}
		x = decodeNext(at, stored, hs.safeLink)
	}
	return pos
}

// walkBin walks bin b of an arena: doubly linked through fd (+16) from
// the bin's header, a fake chunk 16 bytes before bins[2b-2].
func (r *Runtime) walkBin(hs *heapState, ar *Arena, b int, budget *int) {
	hdr := ar.Addr + msBins + uint64(16*(b-1)) - chunkHdr
	kind := ListSmallbin
	switch {
	case b == 1:
		kind = ListUnsorted
	case b >= smallBinsEnd:
		kind = ListLargebin
	}
	fd, err := r.Proc.ReadUint64(hdr + 16)
	if err != nil {
		return
	}
	seen := map[uint64]bool{}
	for pos := 0; fd != hdr && fd != 0; pos++ {
		if *budget <= 0 {
			r.note("malloc free lists: stopped after %d chunks", maxListTotal)
			return
		}
		*budget--
		if seen[fd] || fd%16 != 0 || pos >= maxListLen {
			hs.listNotes = append(hs.listNotes, fmt.Sprintf("%s bin %d of %s: entry %d (%#x) is not a chunk or loops", kind, b, arenaName(ar), pos, fd))
			return
		}
		seen[fd] = true
		hs.lists[fd] = &FreeList{Kind: kind, Bin: b, Head: hdr, Pos: pos}
		next, err := r.Proc.ReadUint64(fd + 16)
		if err != nil {
			hs.listNotes = append(hs.listNotes, fmt.Sprintf("%s bin %d of %s: entry %d (%#x) unreadable: %v", kind, b, arenaName(ar), pos, fd, err))
			return
		}
		fd = next
	}
}

// tcache_perthread_struct sizes: counts are uint16 since glibc 2.30
// (64*2 + 64*8 bytes, chunk 0x290), uint8 before (64 + 64*8, chunk 0x250).
const (
	tcacheChunk16 = 0x290
	tcacheChunk8  = 0x250
)

// walkTcaches finds each thread's tcache through glibc's static TLS
// variable tcache and walks its 64 bins.
func (r *Runtime) walkTcaches(hs *heapState, budget *int) {
	off, ok := r.tcacheOffset(hs)
	if !ok {
		hs.listNotes = append(hs.listNotes, "tcache: glibc's thread-local tcache pointer was not found; chunks in tcache bins read as in use")
		return
	}
	for _, t := range r.Proc.Threads {
		if t.TP() == 0 {
			continue
		}
		tc, err := r.Proc.ReadUint64(t.TP() + uint64(off))
		if err != nil || tc == 0 {
			continue
		}
		size, ok := r.tcacheStructSize(tc)
		if !ok {
			hs.listNotes = append(hs.listNotes, fmt.Sprintf("tcache of thread %d: %#x is not a tcache_perthread_struct", t.TID, tc))
			continue
		}
		countSize, entries := uint64(2), uint64(128)
		if size == tcacheChunk8 {
			countSize, entries = 1, 64
		}
		buf := make([]byte, entries+tcacheBins*8)
		if _, err := r.Proc.ReadMemory(buf, tc); err != nil {
			hs.listNotes = append(hs.listNotes, fmt.Sprintf("tcache of thread %d at %#x: %v", t.TID, tc, err))
			continue
		}
		for i := range tcacheBins {
			first := le.Uint64(buf[entries+uint64(8*i):])
			if first == 0 {
				continue
			}
			count := uint64(buf[uint64(i)*countSize])
			if countSize == 2 {
				count = uint64(le.Uint16(buf[2*i:]))
			}
			what := fmt.Sprintf("tcache bin %d of thread %d", i, t.TID)
			n := r.walkSingly(hs, first, chunkHdr, 0, &FreeList{Kind: ListTcache, Bin: i, TID: t.TID, Head: tc + entries + uint64(8*i)},
				what, budget)
			if uint64(n) != count {
				hs.listNotes = append(hs.listNotes, fmt.Sprintf("%s: counts[%d] says %d chunks, the list holds %d", what, i, count, n))
			}
		}
	}
}

// tcacheStructSize checks that p is the user pointer of a
// tcache_perthread_struct chunk and returns the chunk size.
func (r *Runtime) tcacheStructSize(p uint64) (uint64, bool) {
	if p%16 != 0 {
		return 0, false
	}
	sf, err := r.Proc.ReadUint64(p - 8)
	if err != nil {
		return 0, false
	}
	switch sf &^ flagBits {
	case tcacheChunk16, tcacheChunk8:
		return sf &^ flagBits, true
	}
	return 0, false
}

// tcacheOffset finds the thread-pointer offset of glibc's static TLS
// variable tcache. It has no exported symbol: among the offsets libc's
// TPOFF relocations give its TLS variables, it is the one whose value in
// the threads points to tcache_perthread_struct chunks. A static binary's
// .symtab names it.
func (r *Runtime) tcacheOffset(hs *heapState) (int64, bool) {
	if hs.tcacheSeen {
		return hs.tcacheOff, hs.tcacheHow != ""
	}
	hs.tcacheSeen = true
	im := hs.lib.Image
	ei := r.elf(im)
	var cands []int64
	if hs.lib.Embedded {
		for _, s := range ei.symtab {
			if s.Name == "tcache" && elf.ST_TYPE(s.Info) == elf.STT_TLS {
				for _, b := range r.tlsBlocks(r.Proc.Threads[0]) {
					if b.Image == im {
						cands = append(cands, int64(b.Start-r.Proc.Threads[0].TP())+int64(s.Value))
					}
				}
			}
		}
	} else if rs, err := ei.readRelocs(); err == nil {
		seen := map[int64]bool{}
		for _, rel := range rs {
			if !isTPOff(rel.Type, r.Arch) {
				continue
			}
			v, err := r.Proc.ReadUint64(rel.Off + im.Bias)
			if err != nil || seen[int64(v)] {
				continue
			}
			seen[int64(v)] = true
			cands = append(cands, int64(v))
		}
	}
	best, bestN := int64(0), 0
	for _, off := range cands {
		n := 0
		for _, t := range r.Proc.Threads {
			if t.TP() == 0 {
				continue
			}
			if p, err := r.Proc.ReadUint64(t.TP() + uint64(off)); err == nil && p != 0 {
				if _, ok := r.tcacheStructSize(p); ok {
					n++
				}
			}
		}
		if n > bestN {
			best, bestN = off, n
		}
	}
	if bestN == 0 {
		return 0, false
	}
	hs.tcacheOff = best
	hs.tcacheHow = fmt.Sprintf("%s's TLS variable at thread pointer %s points to a tcache_perthread_struct in %d threads", im.Name(), signedHex(uint64(best)), bestN)
	return best, true
}
