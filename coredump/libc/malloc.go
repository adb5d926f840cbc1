package libc

import (
	"errors"
	"fmt"
	"sort"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/insn"
)

// glibc malloc's structures (malloc/malloc.c, malloc/arena.c) on 64-bit
// targets, glibc 2.27 and later: a chunk header of two words (prev_size,
// size with three flag bits), struct malloc_state with mutex, flags,
// have_fastchunks, fastbinsY[10], top, last_remainder, bins[254],
// binmap[4], next, next_free, attached_threads, system_mem,
// max_system_mem. Every arena found is checked (its next chain must come
// back to it) before it is used.
const (
	chunkHdr       = 16
	minChunk       = 0x20
	flagPrevInuse  = 1
	flagMmapped    = 2
	flagNonMain    = 4
	flagBits       = 7
	msFastbins     = 0x10
	nFastbins      = 10
	msTop          = 0x60
	msBins         = 0x70
	nBins          = 128 // bins 1..127; bin 1 is the unsorted bin
	msNext         = 0x870
	msSystemMem    = 0x888
	sizeofMState   = 0x898
	heapMaxSize    = 64 << 20 // HEAP_MAX_SIZE: 2 * DEFAULT_MMAP_THRESHOLD_MAX
	tcacheBins     = 64
	maxArenas      = 1024
	maxHeaps       = 1 << 14
	maxChunksWalk  = 1 << 26 // per heap
	maxListLen     = 1 << 20 // per free list
	maxListTotal   = 1 << 23
	indexEvery     = 16 // a walk keeps every 16th chunk start
	maxMmapChunks  = 4096
	smallBinsEnd   = 64 // bins 2..63 are small bins
	mallocPageSize = 4096
)

// ErrNotHeap is returned (wrapped) by Chunk for an address outside every
// glibc malloc heap and mmapped chunk.
var ErrNotHeap = errors.New("not in a glibc malloc heap")

// ErrNoMalloc is returned (wrapped) when the process's malloc is not
// glibc's, or its arenas cannot be found.
var ErrNoMalloc = errors.New("glibc malloc not available")

// ChunkState is what a chunk is used for now.
type ChunkState uint8

const (
	ChunkInUse ChunkState = iota + 1
	// ChunkFree is free in one of the lists List names.
	ChunkFree
	// ChunkTop is the arena's top chunk (the unused end of the heap).
	ChunkTop
	// ChunkFreeUnlisted is free by its neighbour's PREV_INUSE bit, yet
	// in none of the arena's bins: a list was corrupted or the chunk was
	// being moved when the process stopped.
	ChunkFreeUnlisted
)

var chunkStateNames = [...]string{ChunkInUse: "in-use", ChunkFree: "free", ChunkTop: "top", ChunkFreeUnlisted: "free-unlisted"}

func (s ChunkState) String() string {
	if int(s) < len(chunkStateNames) && chunkStateNames[s] != "" {
		return chunkStateNames[s]
	}
	return fmt.Sprintf("ChunkState(%d)", uint8(s))
}

// MarshalText writes the state by name.
func (s ChunkState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ListKind names a glibc free list.
type ListKind uint8

const (
	ListTcache ListKind = iota + 1
	ListFastbin
	ListUnsorted
	ListSmallbin
	ListLargebin
)

var listKindNames = [...]string{ListTcache: "tcache", ListFastbin: "fastbin", ListUnsorted: "unsorted",
	ListSmallbin: "smallbin", ListLargebin: "largebin"}

func (k ListKind) String() string {
	if int(k) < len(listKindNames) && listKindNames[k] != "" {
		return listKindNames[k]
	}
	return fmt.Sprintf("ListKind(%d)", uint8(k))
}

// MarshalText writes the kind by name.
func (k ListKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// FreeList says which free list holds a chunk.
type FreeList struct {
	Kind ListKind
	Bin  int    // index within its kind (tcache 0..63, fastbin 0..9, bin 1..127)
	TID  int    // the thread whose tcache it is (tcache only)
	Head uint64 // where the list starts: tcache entries[Bin], fastbinsY[Bin], the bin's header
	Pos  int    // position from the head
}

func (l *FreeList) String() string {
	switch l.Kind {
	case ListTcache:
		return fmt.Sprintf("tcache bin %d (chunks of %#x bytes) of thread %d, entry %d", l.Bin, tcacheChunkSize(l.Bin), l.TID, l.Pos)
	case ListFastbin:
		return fmt.Sprintf("fastbin %d (chunks of %#x bytes), entry %d", l.Bin, uint64(minChunk+16*l.Bin), l.Pos)
	case ListUnsorted:
		return fmt.Sprintf("unsorted bin, entry %d", l.Pos)
	}
	return fmt.Sprintf("%s %d, entry %d", l.Kind, l.Bin, l.Pos)
}

func tcacheChunkSize(bin int) uint64 { return uint64(minChunk + 16*bin) }

// Chunk is one glibc malloc chunk.
type Chunk struct {
	Addr uint64 // the chunk header (prev_size field)
	Mem  uint64 // the pointer malloc returned: Addr + 16
	Size uint64 // chunk size without the flag bits
	// Usable is how many bytes from Mem the program may use.
	Usable uint64
	// The size field's flag bits.
	PrevInUse, Mmapped, NonMainArena bool
	State                            ChunkState
	// List is the free list holding it (State ChunkFree).
	List *FreeList
	// Arena is the malloc_state it belongs to (0 for mmapped chunks);
	// Heap its heap_info for a non-main arena.
	Arena     uint64
	MainArena bool
	Heap      uint64
	// How says how the state was decided.
	How string
}

// Contains reports whether addr lies in the chunk (header included).
func (c *Chunk) Contains(addr uint64) bool { return addr >= c.Addr && addr < c.Addr+c.Size }

func (c *Chunk) String() string {
	s := fmt.Sprintf("chunk %#x (user %#x, size %#x) %s", c.Addr, c.Mem, c.Size, c.State)
	if c.List != nil {
		s += " in " + c.List.String()
	}
	if c.Mmapped {
		s += ", mmapped"
	}
	return s
}

// Arena is one malloc arena.
type Arena struct {
	Addr      uint64
	Main      bool
	Top       uint64
	TopSize   uint64
	SystemMem uint64
	Heaps     []*Heap
	// Initialized is false for a main arena malloc never set up.
	Initialized bool
}

// Heap is one contiguous range of chunks of an arena: the main arena's
// brk heap, or one heap_info-headed mmapped heap of another arena.
type Heap struct {
	Arena *Arena
	Info  uint64 // heap_info, 0 for the main arena
	Start uint64 // first chunk
	End   uint64 // end of the last chunk (the top chunk's end, or heap_info.size)

	walked  bool
	index   []uint64 // every indexEvery-th chunk start
	chunks  int
	walkErr error // where the walk met an invalid chunk header
}

type heapState struct {
	err        error
	lib        *Lib
	arenas     []*Arena
	safeLink   bool
	lists      map[uint64]*FreeList
	listNotes  []string
	tcacheOff  int64 // thread-pointer offset of glibc's tcache variable
	tcacheHow  string
	tcacheSeen bool
	arenaHow   string // how main_arena was found
	win        *memWindow
}

// window returns the heap walks' shared read window.
func (h *heapState) window(p *coredump.Process) *memWindow {
	if h.win == nil {
		h.win = &memWindow{p: p}
	}
	return h.win
}

// Arenas returns glibc malloc's arenas and heaps.
func (r *Runtime) Arenas() ([]*Arena, error) {
	h := r.heapState()
	return h.arenas, h.err
}

func (r *Runtime) heapState() *heapState {
	if r.heap != nil {
		return r.heap
	}
	h := &heapState{}
	r.heap = h
	for _, l := range r.Libs {
		if l.Flavor == Glibc && !l.Compat {
			h.lib = l
			break
		}
	}
	if h.lib == nil {
		h.err = fmt.Errorf("%w: the process has no glibc (%s)", ErrNoMalloc, r.Flavor)
		return h
	}
	h.safeLink = versionAtLeast(h.lib.Version, 2, 32)
	mainArena, how, err := r.findMainArena(h.lib)
	if err != nil {
		h.err = fmt.Errorf("%w: %v", ErrNoMalloc, err)
		return h
	}
	seen := map[uint64]bool{}
	for a := mainArena; a != 0 && !seen[a] && len(h.arenas) < maxArenas; {
		seen[a] = true
		ar, err := r.readArena(a, a == mainArena)
		if err != nil {
			r.note("malloc arena %#x: %v", a, err)
			break
		}
		h.arenas = append(h.arenas, ar)
		next, err := r.Proc.ReadUint64(a + msNext)
		if err != nil || next == mainArena {
			break
		}
		a = next
	}
	h.arenaHow = how
	return h
}

func versionAtLeast(v string, major, minor int) bool {
	var a, b int
	if n, _ := fmt.Sscanf(v, "%d.%d", &a, &b); n < 2 {
		return true // unknown: assume a current glibc
	}
	return a > major || (a == major && b >= minor)
}

// findMainArena finds glibc's static main_arena: by symbol when .symtab
// names it, else from the code of exported malloc functions that take its
// address (malloc_trim, mallinfo2, malloc_stats, mallopt), each
// candidate checked as a malloc_state whose next chain comes back to it.
func (r *Runtime) findMainArena(lib *Lib) (uint64, string, error) {
	ei := r.elf(lib.Image)
	if s, ok := ei.lookup("main_arena"); ok {
		a := s.Value + lib.Image.Bias
		if r.validArena(a) {
			return a, lib.Image.Name() + " symbol main_arena", nil
		}
	}
	count := map[uint64]int{}
	var order []uint64
	for _, name := range []string{"malloc_trim", "mallinfo2", "mallinfo", "malloc_stats", "mallopt", "__libc_mallopt"} {
		s, ok := ei.lookup(name)
		if !ok || s.Size == 0 {
			continue
		}
		for _, t := range r.addressesTaken(s.Value+lib.Image.Bias, min(s.Size, 4096)) {
			m := r.Proc.FindMapping(t)
			if m == nil || m.Perm&coredump.PermWrite == 0 || m.Image != lib.Image {
				continue
			}
			if count[t] == 0 {
				order = append(order, t)
			}
			count[t]++
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return count[order[i]] > count[order[j]] })
	for _, a := range order {
		if r.validArena(a) {
			return a, fmt.Sprintf("address taken by %s's malloc_trim/mallinfo2/malloc_stats code", lib.Image.Name()), nil
		}
	}
	return 0, "", fmt.Errorf("main_arena not found in %s (no symbol, and no address its malloc functions take is a malloc_state)", lib.Image.Name())
}

// addressesTaken lists the addresses code computes pc-relatively
// (lea sym(%rip) on x86-64, adrp+add on arm64), from as much of the
// size bytes at pc as can be read.
func (r *Runtime) addressesTaken(pc, size uint64) []uint64 {
	code, _ := insn.ReadCode(r.Proc, r.Arch, pc, pc+size, size) // scan the readable prefix only: candidates are validated as arenas
	var out []uint64
	for ref := range code.Refs() {
		if ref.Kind == insn.RefAddr {
			out = append(out, ref.Target)
		}
	}
	return out
}

// validArena checks that a looks like a malloc_state: its next chain
// comes back to it, and its top chunk (once malloc is initialised) lies
// in writable memory.
func (r *Runtime) validArena(a uint64) bool {
	p := r.Proc
	seen := map[uint64]bool{}
	cur := a
	for range maxArenas {
		if seen[cur] {
			return false
		}
		seen[cur] = true
		next, err := p.ReadUint64(cur + msNext)
		if err != nil || next == 0 {
			return false
		}
		if next == a {
			break
		}
		cur = next
	}
	if !seen[a] {
		return false
	}
	top, err := p.ReadUint64(a + msTop)
	if err != nil {
		return false
	}
	if top == 0 {
		return true // malloc never initialised
	}
	m := p.FindMapping(top)
	return m != nil && m.Perm&coredump.PermWrite != 0 && top%16 == 0
}

// readArena reads one arena and finds its heaps.
func (r *Runtime) readArena(a uint64, main bool) (*Arena, error) {
	p := r.Proc
	ar := &Arena{Addr: a, Main: main}
	var err error
	if ar.Top, err = p.ReadUint64(a + msTop); err != nil {
		return nil, err
	}
	if ar.SystemMem, err = p.ReadUint64(a + msSystemMem); err != nil {
		r.note("malloc arena %#x: system_mem: %v", a, err) // 0 would read as an empty arena
	}
	if ar.Top == 0 || ar.Top == a+msBins-chunkHdr {
		return ar, nil // initial_top: the unsorted bin header, no heap yet
	}
	ar.Initialized = true
	ts, err := p.ReadUint64(ar.Top + 8)
	if err != nil {
		return nil, fmt.Errorf("top chunk %#x: %w", ar.Top, err)
	}
	ar.TopSize = ts &^ flagBits
	topEnd := ar.Top + ar.TopSize
	if main {
		m := p.FindMapping(ar.Top)
		if m == nil {
			return nil, fmt.Errorf("top chunk %#x is not mapped", ar.Top)
		}
		ar.Heaps = []*Heap{{Arena: ar, Start: m.Start, End: topEnd}}
		return ar, nil
	}
	// A non-main arena's heaps are HEAP_MAX_SIZE-aligned mappings headed
	// by heap_info {ar_ptr, prev, size, mprotect_size, ...}; the newest
	// holds the top chunk, prev links to older ones.
	var heaps []*Heap
	seen := map[uint64]bool{}
	for hi := ar.Top &^ (heapMaxSize - 1); hi != 0 && !seen[hi] && len(heaps) < maxHeaps; {
		seen[hi] = true
		var b [24]byte
		if _, err := p.ReadMemory(b[:], hi); err != nil {
			return nil, fmt.Errorf("heap_info %#x: %w", hi, err)
		}
		if le.Uint64(b[0:]) != a {
			return nil, fmt.Errorf("heap_info %#x belongs to arena %#x, not %#x", hi, le.Uint64(b[0:]), a)
		}
		h := &Heap{Arena: ar, Info: hi, End: hi + le.Uint64(b[16:])}
		heaps = append(heaps, h)
		hi = le.Uint64(b[8:])
	}
	// The oldest heap holds the arena right after its heap_info, which
	// tells sizeof(heap_info); chunks start after the malloc_state there
	// and right after heap_info in the others.
	sizeofInfo := uint64(0)
	for _, h := range heaps {
		if a > h.Info && a-h.Info < 0x100 {
			sizeofInfo = a - h.Info
		}
	}
	if sizeofInfo == 0 {
		return nil, fmt.Errorf("no heap of arena %#x holds the arena itself", a)
	}
	for i := len(heaps) - 1; i >= 0; i-- {
		h := heaps[i]
		if a-h.Info == sizeofInfo {
			h.Start = (a+sizeofMState+chunkHdr+15)&^15 - chunkHdr
		} else {
			h.Start = h.Info + sizeofInfo
		}
		if h.Info == ar.Top&^(heapMaxSize-1) {
			h.End = topEnd
		}
		ar.Heaps = append(ar.Heaps, h)
	}
	return ar, nil
}

// memWindow reads target memory in blocks for walks over many chunks.
type memWindow struct {
	p    *coredump.Process
	base uint64
	buf  []byte
}

func (w *memWindow) u64(a uint64) (uint64, error) {
	if a >= w.base && a+8 <= w.base+uint64(len(w.buf)) {
		return le.Uint64(w.buf[a-w.base:]), nil
	}
	const block = 64 << 10
	if cap(w.buf) < block {
		w.buf = make([]byte, block)
	}
	w.buf = w.buf[:block]
	n, err := w.p.ReadMemory(w.buf, a)
	w.base, w.buf = a, w.buf[:n]
	if n < 8 {
		return 0, err
	}
	return le.Uint64(w.buf), nil
}

// walk indexes a heap's chunks, stopping at the first header that cannot
// be a chunk.
func (r *Runtime) walk(h *Heap) {
	if h.walked {
		return
	}
	h.walked = true
	w := r.heapState().window(r.Proc)
	top := h.Arena.Top
	for c := h.Start; c < h.End; {
		if h.chunks >= maxChunksWalk {
			h.walkErr = fmt.Errorf("stopped after %d chunks", maxChunksWalk)
			return
		}
		if h.chunks%indexEvery == 0 {
			h.index = append(h.index, c)
		}
		h.chunks++
		if c == top {
			return
		}
		sf, err := w.u64(c + 8)
		if err != nil {
			h.walkErr = fmt.Errorf("chunk %#x: size field unreadable: %w", c, err)
			return
		}
		size := sf &^ flagBits
		switch {
		case size == 0 && c+chunkHdr <= h.End:
			return // the end of a heap segment, after its fenceposts
		case size < chunkHdr || size%16 != 0 || c+size > h.End || c+size < c:
			h.walkErr = &CorruptChunkError{Addr: c, SizeField: sf, Why: fmt.Sprintf("size %#x does not fit the heap [%#x, %#x)", size, h.Start, h.End)}
			return
		case sf&flagMmapped != 0:
			h.walkErr = &CorruptChunkError{Addr: c, SizeField: sf, Why: "IS_MMAPPED set on a chunk inside a heap"}
			return
		case size > chunkHdr && (sf&flagNonMain != 0) == h.Arena.Main: // fenceposts carry no arena bit
			h.walkErr = &CorruptChunkError{Addr: c, SizeField: sf, Why: fmt.Sprintf("NON_MAIN_ARENA is %v in the %s", sf&flagNonMain != 0, arenaName(h.Arena))}
			return
		}
		c += size
	}
}

func arenaName(a *Arena) string {
	if a.Main {
		return "main arena"
	}
	return fmt.Sprintf("arena %#x", a.Addr)
}

// CorruptChunkError reports a chunk header that cannot be valid: the
// heap cannot be walked past it.
type CorruptChunkError struct {
	Addr      uint64
	SizeField uint64
	Why       string
}

func (e *CorruptChunkError) Error() string {
	return fmt.Sprintf("corrupt chunk header at %#x (size field %#x): %s", e.Addr, e.SizeField, e.Why)
}

// Chunk returns the glibc malloc chunk containing addr: its bounds, its
// flags, whether it is in use, and which free list holds it.
func (r *Runtime) Chunk(addr uint64) (*Chunk, error) {
	hs := r.heapState()
	if hs.err != nil {
		return nil, hs.err
	}
	for _, ar := range hs.arenas {
		for _, h := range ar.Heaps {
			lo := h.Start
			if h.Info != 0 {
				lo = h.Info
			}
			if addr < lo || addr >= h.End {
				continue
			}
			if addr < h.Start {
				return nil, fmt.Errorf("%#x is in the header of heap %#x of %s (heap_info/malloc_state), not in a chunk: %w", addr, h.Info, arenaName(ar), ErrNotHeap)
			}
			return r.chunkInHeap(h, addr)
		}
	}
	if c, err := r.mmappedChunk(addr); c != nil || err != nil {
		return c, err
	}
	return nil, fmt.Errorf("%#x: %w", addr, ErrNotHeap)
}

func (r *Runtime) chunkInHeap(h *Heap, addr uint64) (*Chunk, error) {
	r.walk(h)
	i := sort.Search(len(h.index), func(i int) bool { return h.index[i] > addr }) - 1
	if i < 0 {
		return nil, fmt.Errorf("%#x precedes the first chunk %#x of %s: %w", addr, h.Start, arenaName(h.Arena), ErrNotHeap)
	}
	w := r.heapState().window(r.Proc)
	for c, n := h.index[i], 0; c < h.End && n <= indexEvery; n++ {
		if c == h.Arena.Top {
			return r.describeChunk(h, c, h.Arena.Top+h.Arena.TopSize-c, flagPrevInuse, w), nil
		}
		sf, err := w.u64(c + 8)
		if err != nil {
			return nil, fmt.Errorf("chunk %#x: %w", c, err)
		}
		size := sf &^ flagBits
		if size < chunkHdr || c+size > h.End || c+size < c {
			if h.walkErr != nil {
				return nil, fmt.Errorf("%#x lies after a corrupt chunk header: %w", addr, h.walkErr)
			}
			return nil, &CorruptChunkError{Addr: c, SizeField: sf, Why: "invalid size"}
		}
		if addr < c+size {
			return r.describeChunk(h, c, size, sf&flagBits, w), nil
		}
		c += size
	}
	if h.walkErr != nil {
		return nil, fmt.Errorf("%#x lies after a corrupt chunk header: %w", addr, h.walkErr)
	}
	return nil, fmt.Errorf("%#x: no chunk of %s covers it: %w", addr, arenaName(h.Arena), ErrNotHeap)
}

func (r *Runtime) describeChunk(h *Heap, c, size, flags uint64, w *memWindow) *Chunk {
	ar := h.Arena
	ch := &Chunk{Addr: c, Mem: c + chunkHdr, Size: size, Usable: size - 8,
		PrevInUse: flags&flagPrevInuse != 0, NonMainArena: flags&flagNonMain != 0,
		Arena: ar.Addr, MainArena: ar.Main, Heap: h.Info}
	if c == ar.Top {
		ch.State, ch.Usable = ChunkTop, 0
		ch.How = fmt.Sprintf("the top chunk of the %s (malloc_state.top)", arenaName(ar))
		return ch
	}
	lists := r.freeLists()
	next := c + size
	var nextInuse bool
	if next == ar.Top {
		nextInuse = true // top's PREV_INUSE tracks the last chunk
		if sf, err := w.u64(next + 8); err == nil {
			nextInuse = sf&flagPrevInuse != 0
		}
	} else if sf, err := w.u64(next + 8); err == nil {
		nextInuse = sf&flagPrevInuse != 0
	} else {
		nextInuse = true
	}
	if l := lists[c]; l != nil {
		ch.State, ch.List = ChunkFree, l
		ch.How = "found in " + l.String()
		return ch
	}
	if !nextInuse {
		ch.State = ChunkFreeUnlisted
		ch.How = fmt.Sprintf("the next chunk %#x has PREV_INUSE clear, but no bin of the %s lists it", next, arenaName(ar))
		return ch
	}
	ch.State = ChunkInUse
	ch.How = fmt.Sprintf("the next chunk %#x has PREV_INUSE set and no tcache, fastbin or bin lists it", next)
	return ch
}

// mmappedChunk finds a chunk malloc served with mmap: its own mapping,
// headed by {prev_size, size | IS_MMAPPED}; adjacent ones share a VMA.
func (r *Runtime) mmappedChunk(addr uint64) (*Chunk, error) {
	m := r.Proc.FindMapping(addr)
	if m == nil || m.FileBacked() || m.Perm&coredump.PermWrite == 0 {
		return nil, nil
	}
	for c, n := m.Start, 0; c < m.End && n < maxMmapChunks; n++ {
		var b [16]byte
		if _, err := r.Proc.ReadMemory(b[:], c); err != nil {
			return nil, nil
		}
		pad, sf := le.Uint64(b[:]), le.Uint64(b[8:])
		size := sf &^ flagBits
		if sf&flagBits != flagMmapped || size == 0 || size%mallocPageSize != 0 || c+size > m.End || pad >= mallocPageSize {
			return nil, nil
		}
		if addr < c+size {
			return &Chunk{Addr: c, Mem: c + chunkHdr, Size: size, Usable: size - chunkHdr, Mmapped: true,
				State: ChunkInUse, How: fmt.Sprintf("an mmapped chunk heading its own mapping %s (freed mmapped chunks are unmapped)", m)}, nil
		}
		c += size
	}
	return nil, nil
}

// Chunks calls fn for each chunk of every heap, in address order per heap,
// until fn returns false. A heap whose walk met a corrupt header yields
// the chunks before it and the error.
func (r *Runtime) Chunks(fn func(*Chunk) bool) error {
	hs := r.heapState()
	if hs.err != nil {
		return hs.err
	}
	var errs []error
	for _, ar := range hs.arenas {
		for _, h := range ar.Heaps {
			r.walk(h)
			w := r.heapState().window(r.Proc)
			for c := h.Start; c < h.End; {
				if c == ar.Top {
					if !fn(r.describeChunk(h, c, ar.TopSize, flagPrevInuse, w)) {
						return nil
					}
					break
				}
				sf, err := w.u64(c + 8)
				size := sf &^ flagBits
				if err != nil || size < chunkHdr || c+size > h.End || c+size < c {
					break
				}
				if !fn(r.describeChunk(h, c, size, sf&flagBits, w)) {
					return nil
				}
				c += size
			}
			if h.walkErr != nil {
				errs = append(errs, h.walkErr)
			}
		}
	}
	return errors.Join(errs...)
}

// ChunkRef is a malloc chunk a register of a frame points to.
type ChunkRef struct {
	Chunk *Chunk
	Frame Frame
	Reg   string
	Value uint64
}

// ChunksInRegisters lists the chunks whose header or user pointer a
// register of the frames holds: in the frames of malloc or free, the
// chunk being allocated or freed is among them.
func (r *Runtime) ChunksInRegisters(frames []Frame) []ChunkRef {
	var out []ChunkRef
	seen := map[uint64]bool{}
	for _, f := range frames {
		regs := f.Regs()
		if regs == nil {
			continue
		}
		for n := range 32 {
			v, ok := regs.Get(n)
			if !ok || v < mallocPageSize || seen[v] {
				continue
			}
			ch, err := r.Chunk(v)
			if err != nil || (ch.Mem != v && ch.Addr != v) || seen[ch.Addr] {
				continue
			}
			seen[v], seen[ch.Addr] = true, true
			out = append(out, ChunkRef{Chunk: ch, Frame: f, Reg: r.dwarfRegName(n), Value: v})
		}
	}
	return out
}

var amd64DwarfNames = [...]string{"rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"}

func (r *Runtime) dwarfRegName(n int) string {
	if r.Arch == coredump.ArchARM64 {
		if n == 31 {
			return "sp"
		}
		return fmt.Sprintf("x%d", n)
	}
	if n < len(amd64DwarfNames) {
		return amd64DwarfNames[n]
	}
	return fmt.Sprintf("r%d", n)
}
