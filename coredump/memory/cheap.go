package memory

import (
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
)

// CHeapInfo places an address in the C allocator's memory.
type CHeapInfo struct {
	// Arena is "main" (the brk heap), "non-main" (a 64 MiB-aligned
	// thread arena heap) or "mmapped" (a chunk of its own mapping).
	Arena   string        `json:"arena"`
	Mapping coredump.Addr `json:"mapping"`
	// Chunk, Size and InUse describe the malloc chunk holding the address
	// when it is known (InUse nil when undecided).
	Chunk   coredump.Addr `json:"chunk,omitempty"`
	Size    uint64        `json:"size,omitempty"`
	InUse   *bool         `json:"in_use,omitempty"`
	MMapped bool          `json:"mmapped,omitempty"`
	// Evidence says how the memory was recognised.
	Evidence string `json:"evidence"`
}

func (c *CHeapInfo) summary(addr uint64) string {
	s := fmt.Sprintf("C heap (glibc malloc, %s arena)", c.Arena)
	if c.Chunk != 0 {
		s += fmt.Sprintf(", chunk %s of %d bytes, offset %#x into its user data", c.Chunk, c.Size, addr-uint64(c.Chunk)-16)
		if c.InUse != nil {
			if *c.InUse {
				s += ", in use"
			} else {
				s += ", FREE"
			}
		}
	}
	return s
}

// glibc malloc facts (malloc/malloc.c, 2.26-2.41 on 64-bit).
const (
	chunkPrevInuse  = 1
	chunkIsMMapped  = 2
	chunkNonMain    = 4
	heapMaxSize     = 64 << 20 // HEAP_MAX_SIZE: non-main arena heaps are aligned to it
	tcacheChunkSize = 0x290    // the first chunk of a glibc 2.26+ heap: tcache_perthread_struct
	maxBrkGap       = 32 << 20 // brk start randomisation on x86-64
)

// cHeapAt decides whether the anonymous mapping m holding addr is C heap.
//
// This is the one hook for C allocator memory: it recognises glibc's heaps
// at mapping level (the brk heap, thread-arena heaps, mmapped chunks) from
// their headers. Chunk-level answers (which chunk, in use or free) come
// from the C-runtime package once its malloc walker is available; callers
// use only this function and cHeapMappings.
func (s *Space) cHeapAt(addr uint64, m *coredump.Mapping) *CHeapInfo {
	c := s.cHeapMapping(m)
	if c == nil {
		return nil
	}
	if c.MMapped && addr >= uint64(c.Chunk) && addr < uint64(c.Chunk)+c.Size {
		return c
	}
	out := *c
	out.Chunk, out.Size, out.MMapped, out.InUse = 0, 0, false, nil
	return &out
}

// cHeapMapping recognises a C heap mapping from its first words.
func (s *Space) cHeapMapping(m *coredump.Mapping) *CHeapInfo {
	if m.Image != nil || m.FileBacked() || m.Perm&(coredump.PermRead|coredump.PermWrite) != coredump.PermRead|coredump.PermWrite {
		return nil
	}
	if s.heap != nil && s.heap.Contains(m.Start) {
		return nil
	}
	// A thread's stack can start with words that look like a chunk header
	// (a deep recursion fills it to the bottom).
	if s.stackAt(m.Start) != nil || s.stackAt(m.End-1) != nil {
		return nil
	}
	var hdr [4]uint64
	var b [32]byte
	if _, err := s.p.ReadMemory(b[:], m.Start); err != nil {
		return nil
	}
	for i := range hdr {
		hdr[i] = le.Uint64(b[i*8:])
	}
	base := coredump.Addr(m.Start)
	switch {
	case hdr[0] == 0 && hdr[1] == tcacheChunkSize|chunkPrevInuse:
		return &CHeapInfo{Arena: "main", Mapping: base,
			Evidence: fmt.Sprintf("the mapping starts with glibc's tcache chunk (size field %#x)", hdr[1])}
	case hdr[0] == 0 && hdr[1]&chunkIsMMapped != 0 && hdr[1]&^7 >= 4096 && (hdr[1]&^7)%4096 == 0 && hdr[1]&^7 <= m.Size():
		t := true
		return &CHeapInfo{Arena: "mmapped", Mapping: base, Chunk: base, Size: hdr[1] &^ 7, MMapped: true, InUse: &t,
			Evidence: fmt.Sprintf("the mapping starts with a malloc chunk header with IS_MMAPPED set (size field %#x)", hdr[1])}
	case m.Start%heapMaxSize == 0 && hdr[0] > m.Start && hdr[0] < m.Start+4096:
		return &CHeapInfo{Arena: "non-main", Mapping: base,
			Evidence: fmt.Sprintf("64 MiB-aligned heap whose heap_info.ar_ptr %#x points into it", hdr[0])}
	}
	// The brk heap without tcache (old glibc, tcache disabled): the first
	// anonymous mapping after the executable, within brk randomisation.
	if exe := s.p.Exe; exe != nil && s.hasMalloc() {
		end := s.imageEnd(exe)
		below, _ := s.p.MappingsAround(m.Start - 1)
		if m.Start >= end && m.Start-end <= maxBrkGap && below != nil && (below.Image == exe || below.Contains(end-1)) {
			return &CHeapInfo{Arena: "main", Mapping: base,
				Evidence: "first anonymous mapping after the executable's .bss (the brk heap)"}
		}
	}
	return nil
}

// hasMalloc reports whether a C allocator is loaded: some image defines
// malloc.
func (s *Space) hasMalloc() bool {
	for _, im := range s.p.Images {
		if sym, ok := im.LookupSymbol("malloc"); ok && sym.Addr != 0 {
			return true
		}
	}
	return false
}

// cHeapMappings lists the mappings recognised as C heap.
func (s *Space) cHeapMappings() []*coredump.Mapping {
	s.loadGo()
	var out []*coredump.Mapping
	for _, m := range s.p.Mappings {
		if s.cHeapMapping(m) != nil {
			out = append(out, m)
		}
	}
	return out
}
