package memory

import (
	"errors"
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/libc"
)

// CHeapInfo places an address in the C allocator's memory.
type CHeapInfo struct {
	// Arena is "main" (the brk heap), "non-main" (a thread arena's heap)
	// or "mmapped" (a chunk of its own mapping); "" when only the mapping
	// is known.
	Arena   string        `json:"arena,omitempty"`
	Mapping coredump.Addr `json:"mapping"`
	// Chunk, Size and State describe the glibc malloc chunk holding the
	// address (package libc walks the heaps); InUse is nil when the chunk
	// is unknown.
	Chunk   coredump.Addr `json:"chunk,omitempty"`
	Mem     coredump.Addr `json:"mem,omitempty"`
	Size    uint64        `json:"size,omitempty"`
	State   string        `json:"state,omitempty"`
	InUse   *bool         `json:"in_use,omitempty"`
	MMapped bool          `json:"mmapped,omitempty"`
	// Evidence says how the memory was recognised.
	Evidence string `json:"evidence"`
}

func (c *CHeapInfo) summary(addr uint64) string {
	if c.Chunk == 0 {
		s := "C heap"
		if c.Arena != "" {
			s += fmt.Sprintf(" (%s arena)", c.Arena)
		}
		return s + ": " + c.Evidence
	}
	s := fmt.Sprintf("C heap (glibc malloc, %s arena), chunk %s of %d bytes", c.Arena, c.Chunk, c.Size)
	if addr >= uint64(c.Mem) {
		s += fmt.Sprintf(", offset %#x into its user data", addr-uint64(c.Mem))
	} else {
		s += ", in its header"
	}
	switch c.State {
	case libc.ChunkInUse.String():
		s += ", in use"
	case libc.ChunkTop.String():
		s += ", the arena's unallocated top chunk"
	default:
		s += ", FREE (" + c.Evidence + ")"
	}
	return s
}

// cHeapAt says whether addr, in the anonymous mapping m, is C heap. The
// chunk-level answer is package libc's glibc malloc walker; a process
// whose malloc libc cannot walk (musl, glibc without main_arena) gets a
// mapping-level answer.
func (s *Space) cHeapAt(addr uint64, m *coredump.Mapping) *CHeapInfo {
	if !s.maybeCHeap(m) {
		return nil
	}
	lr, ok := s.glibcMalloc()
	if !ok {
		return s.cHeapMapping(m)
	}
	ch, err := lr.Chunk(addr)
	if err != nil {
		var corrupt *libc.CorruptChunkError
		if errors.As(err, &corrupt) {
			return &CHeapInfo{Mapping: coredump.Addr(m.Start), Evidence: "in a glibc malloc heap, but " + err.Error()}
		}
		return nil // glibc's walker knows its heaps: anything else is not one
	}
	return chunkInfo(ch, m)
}

func chunkInfo(ch *libc.Chunk, m *coredump.Mapping) *CHeapInfo {
	c := &CHeapInfo{Mapping: coredump.Addr(m.Start), Chunk: coredump.Addr(ch.Addr), Mem: coredump.Addr(ch.Mem),
		Size: ch.Size, State: ch.State.String(), MMapped: ch.Mmapped, Evidence: ch.How}
	switch {
	case ch.Mmapped:
		c.Arena = "mmapped"
	case ch.MainArena:
		c.Arena = "main"
	default:
		c.Arena = "non-main"
	}
	inUse := ch.State == libc.ChunkInUse
	c.InUse = &inUse
	return c
}

// glibcMalloc returns the C runtime view when it can walk glibc malloc.
func (s *Space) glibcMalloc() (*libc.Runtime, bool) {
	lr, err := libc.Of(s.p)
	if err != nil {
		return nil, false
	}
	if _, err := lr.Arenas(); err != nil {
		return nil, false
	}
	return lr, true
}

// maybeCHeap rules out mappings that cannot be C heap: images, files,
// inaccessible or read-only memory, the Go heap and thread stacks (a deep
// recursion fills a stack with words that look like chunk headers).
func (s *Space) maybeCHeap(m *coredump.Mapping) bool {
	if m.Image != nil || m.FileBacked() || m.Perm&(coredump.PermRead|coredump.PermWrite) != coredump.PermRead|coredump.PermWrite {
		return false
	}
	s.loadGo()
	if s.heap != nil && s.heap.Contains(m.Start) {
		return false
	}
	return s.stackAt(m.Start) == nil && s.stackAt(m.End-1) == nil
}

// Mapping-level facts for a malloc libc cannot walk.
const maxBrkGap = 32 << 20 // brk start randomisation on x86-64

// cHeapMapping recognises the brk heap of a C allocator libc cannot walk
// (musl's): the first anonymous mapping after the executable's .bss,
// within brk randomisation, in a process that has a malloc.
func (s *Space) cHeapMapping(m *coredump.Mapping) *CHeapInfo {
	exe := s.p.Exe
	if exe == nil || !s.hasMalloc() {
		return nil
	}
	end := s.imageEnd(exe)
	below, _ := s.p.MappingsAround(m.Start - 1)
	if m.Start >= end && m.Start-end <= maxBrkGap && below != nil && (below.Image == exe || below.Contains(end-1)) {
		return &CHeapInfo{Mapping: coredump.Addr(m.Start),
			Evidence: "first anonymous mapping after the executable's .bss (the brk heap); the C allocator's chunks are not walked"}
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

// cHeapRange is C heap memory to scan for Go pointers.
type cHeapRange struct {
	start, end uint64
	name       string // how the holder is named: "C heap chunk 0x..." or "C heap mapping 0x..."
	chunk      uint64 // the in-use chunk, 0 when only the mapping is known
}

// cHeapRanges lists the C heap memory that holds program data: the user
// data of every in-use glibc malloc chunk (free chunks hold stale words,
// not pointers C keeps), or, without a walkable glibc malloc, the
// mappings recognised as C heap.
func (s *Space) cHeapRanges() (out []cHeapRange, notes []string) {
	lr, ok := s.glibcMalloc()
	if !ok {
		for _, m := range s.p.Mappings {
			if s.maybeCHeap(m) && s.cHeapMapping(m) != nil {
				out = append(out, cHeapRange{start: m.Start, end: m.End, name: fmt.Sprintf("C heap mapping %#x", m.Start)})
			}
		}
		return out, nil
	}
	add := func(ch *libc.Chunk) {
		if ch.State == libc.ChunkInUse && ch.Addr+ch.Size > ch.Mem {
			out = append(out, cHeapRange{start: ch.Mem, end: ch.Addr + ch.Size, chunk: ch.Mem,
				name: fmt.Sprintf("C heap chunk %#x", ch.Mem)})
		}
	}
	if err := lr.Chunks(func(ch *libc.Chunk) bool { add(ch); return true }); err != nil {
		notes = append(notes, "glibc malloc heaps: "+err.Error())
	}
	// Chunks malloc served with mmap head their own mappings.
	for _, m := range s.p.Mappings {
		if !s.maybeCHeap(m) {
			continue
		}
		for a, n := m.Start, 0; a < m.End && n < maxMmapChunksScanned; n++ {
			ch, err := lr.Chunk(a)
			if err != nil || !ch.Mmapped {
				break
			}
			add(ch)
			a = ch.Addr + ch.Size
		}
	}
	return out, notes
}

// maxMmapChunksScanned bounds the mmapped chunks read per mapping.
const maxMmapChunksScanned = 4096
