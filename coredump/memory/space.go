// Package memory answers "what is at this address?" for a process: not
// mapped (and what lies around it), a mapping with its permissions and
// file, a section and symbol of an ELF image, a Go heap object (allocated
// or free, with its type when the runtime records it), a goroutine stack
// (live or dead part), a thread's stack or guard page, C heap memory, a
// thread's TLS block. It also decodes and validates slice headers.
//
// Every answer is a Region that carries the facts it rests on, so the
// rules of package diagnose can quote them as evidence.
package memory

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

var le = binary.LittleEndian

// Kind is what an address is, in one word.
type Kind uint8

const (
	// NonCanonical: an amd64 address between the user and kernel halves
	// that no pointer can hold; using it raises #GP.
	NonCanonical Kind = iota + 1
	// KernelAddr: an address in the kernel's half of the address space.
	KernelAddr
	// NullPage: within the first 64 KiB, which Linux never maps
	// (vm.mmap_min_addr): a nil pointer plus an offset.
	NullPage
	// Unmapped: no mapping holds the address.
	Unmapped
	// GuardPage: an inaccessible page below a thread's stack.
	GuardPage
	// GoHeap: a Go heap span (object, free slot, free page).
	GoHeap
	// GoStack: a stack the Go runtime owns (goroutine, g0, gsignal), or a
	// freed stack span.
	GoStack
	// ThreadStack: the stack of an OS thread.
	ThreadStack
	// CHeap: memory of the C allocator.
	CHeap
	// GoData: a Go global variable (.data, .bss, .noptrdata, .noptrbss).
	GoData
	// ImageMemory: code or data of an ELF image (executable, library,
	// vDSO) other than Go globals.
	ImageMemory
	// TLS: a thread's TLS block or thread control block.
	TLS
	// Anonymous: other anonymous memory.
	Anonymous
	// FileMapping: a mapping of a file that is not an ELF image.
	FileMapping
	// Reserved: an inaccessible (PROT_NONE) reservation.
	Reserved
)

var kindNames = [...]string{
	NonCanonical: "non-canonical", KernelAddr: "kernel", NullPage: "null-page", Unmapped: "unmapped",
	GuardPage: "guard-page", GoHeap: "go-heap", GoStack: "go-stack", ThreadStack: "thread-stack",
	CHeap: "c-heap", GoData: "go-data", ImageMemory: "image", TLS: "tls", Anonymous: "anonymous",
	FileMapping: "file", Reserved: "reserved",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// MarshalText writes the kind by name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// nullPageLimit is Linux's default vm.mmap_min_addr: nothing is ever
// mapped below it, so an address there is a nil pointer plus an offset.
const nullPageLimit = 0x10000

// Region is the classification of one address.
type Region struct {
	Addr    coredump.Addr `json:"addr"`
	Kind    Kind          `json:"kind"`
	Summary string        `json:"summary"`
	// Mapping holds the address; Below and Above are the nearest mappings
	// around an unmapped address.
	Mapping *MappingInfo        `json:"mapping,omitempty"`
	Below   *MappingInfo        `json:"below,omitempty"`
	Above   *MappingInfo        `json:"above,omitempty"`
	Image   *ImageInfo          `json:"image,omitempty"`
	Heap    *goruntime.HeapAddr `json:"go_heap,omitempty"`
	Stack   *StackInfo          `json:"stack,omitempty"`
	CHeap   *CHeapInfo          `json:"c_heap,omitempty"`
	TLS     *TLSInfo            `json:"tls,omitempty"`
	// Readable reports whether the core holds (or a verified file
	// supplies) the byte at the address.
	Readable bool `json:"readable"`
	// Dangling is set when memory at the address is not in use by what a
	// pointer to it expects: unmapped, a free heap slot or page, the dead
	// part of a stack, a freed stack, a freed C chunk. Why says which.
	Dangling bool   `json:"dangling,omitempty"`
	Why      string `json:"dangling_why,omitempty"`
	// Notes say what could not be read or decided.
	Notes []string `json:"notes,omitempty"`
}

// MappingInfo describes one mapping.
type MappingInfo struct {
	Start coredump.Addr `json:"start"`
	End   coredump.Addr `json:"end"`
	Perm  string        `json:"perm"`
	File  string        `json:"file,omitempty"`
	// FileOffset is the file offset of the classified address (or of
	// Start for Below/Above).
	FileOffset uint64 `json:"file_offset,omitempty"`
	// Distance from the classified address, for Below and Above.
	Distance uint64 `json:"distance,omitempty"`
	// Role names what the mapping is when known: "stack of thread 1234",
	// "Go heap arena", ...
	Role string `json:"role,omitempty"`
}

func (m *MappingInfo) String() string {
	s := fmt.Sprintf("%s-%s %s", m.Start, m.End, m.Perm)
	if m.File != "" {
		s += " " + m.File
	}
	if m.Role != "" {
		s += " (" + m.Role + ")"
	}
	return s
}

// ImageInfo locates an address in an ELF image.
type ImageInfo struct {
	Path    string `json:"path"`
	Section string `json:"section,omitempty"`
	// Symbol is the symbol covering the address, or the nearest one below
	// it (Offset says how far, Inside whether the symbol's size reaches).
	Symbol     string        `json:"symbol,omitempty"`
	SymbolAddr coredump.Addr `json:"symbol_addr,omitempty"`
	SymbolSize uint64        `json:"symbol_size,omitempty"`
	Offset     uint64        `json:"offset,omitempty"`
	Inside     bool          `json:"inside,omitempty"`
	// Go reports a Go symbol (package-qualified name) in a Go executable.
	Go bool `json:"go,omitempty"`
}

// Where names the symbol and offset, e.g. "main.config+0x10".
func (im *ImageInfo) Where() string {
	if im.Symbol == "" {
		return ""
	}
	if im.Offset == 0 {
		return im.Symbol
	}
	return fmt.Sprintf("%s+%#x", im.Symbol, im.Offset)
}

// StackInfo says whose stack an address is on and whether it is in use.
type StackInfo struct {
	Kind      StackKind     `json:"kind"`
	Goroutine int64         `json:"goroutine,omitempty"`
	G         coredump.Addr `json:"g,omitempty"`
	TID       int           `json:"tid,omitempty"`
	M         *int64        `json:"m,omitempty"`
	Lo        coredump.Addr `json:"lo"`
	Hi        coredump.Addr `json:"hi"`
	// SP is the stack's lowest live address and SPSource where it came
	// from; Live says whether the address is at or above it.
	SP       coredump.Addr `json:"sp,omitempty"`
	SPSource string        `json:"sp_source,omitempty"`
	Live     *bool         `json:"live,omitempty"`
	Status   string        `json:"status,omitempty"`
	// Freed: a stack span no goroutine uses (freed, or left behind when
	// the goroutine's stack grew and moved); or the stack of a dead
	// goroutine.
	Freed bool `json:"freed,omitempty"`
	// Guard: the address is in the guard page or gap below the stack.
	Guard bool `json:"guard,omitempty"`
}

// Owner names the stack's owner in words: "goroutine 7", "thread 1234's
// g0 stack (M2)".
func (st *StackInfo) Owner() string {
	switch st.Kind {
	case GoroutineStack:
		return fmt.Sprintf("goroutine %d", st.Goroutine)
	case SystemStack, SignalStack:
		s := "the " + st.Kind.String() + " stack of "
		if st.M != nil {
			s += fmt.Sprintf("M%d", *st.M)
		}
		if st.TID != 0 {
			s += fmt.Sprintf(" (thread %d)", st.TID)
		}
		return s
	case NativeStack:
		return fmt.Sprintf("thread %d", st.TID)
	}
	return "a stack"
}

// TLSInfo places an address in a thread's TLS block or control block.
type TLSInfo struct {
	TID int           `json:"tid"`
	TP  coredump.Addr `json:"tp"` // the thread pointer (fs_base)
	// Offset is addr − TP: negative in the static TLS block (x86-64's
	// variant II layout), non-negative in the thread control block.
	Offset int64  `json:"offset"`
	What   string `json:"what"`
	goM    bool
}

// Space classifies addresses of one process. Get it with For.
type Space struct {
	p *coredump.Process

	goOnce    sync.Once
	bin       *goruntime.Binary
	rt        *goruntime.Runtime
	heap      *goruntime.Heap
	gv        *goView
	goErrs    []string
	thOnce    sync.Once
	threads   []threadStack
	tls       []tlsRange
	faultOnce sync.Once
	fault     *Fault
	secMu     sync.Mutex
	secs      map[*coredump.Image][]section
	regSaves  map[*coredump.Image]map[string]bool
}

type spaceKey struct{}

// For returns the address-space view of p, shared by every caller.
func For(p *coredump.Process) *Space {
	return p.Cached(spaceKey{}, func() any {
		return &Space{p: p, secs: map[*coredump.Image][]section{}, regSaves: map[*coredump.Image]map[string]bool{}}
	}).(*Space)
}

// Process is the process the space belongs to.
func (s *Space) Process() *coredump.Process { return s.p }

// loadGo reads the Go runtime's view once; a process without Go (a C
// program) simply has none.
func (s *Space) loadGo() {
	s.goOnce.Do(func() {
		if s.p.Exe == nil {
			return
		}
		bin, err := goruntime.LoadBinary(s.p.Exe)
		if err != nil {
			return // not a Go program
		}
		s.bin = bin
		if h, err := goruntime.NewHeap(s.p, bin); err == nil {
			s.heap = h
		} else {
			s.goErrs = append(s.goErrs, err.Error())
		}
		rt, err := goruntime.Load(s.p)
		if err != nil {
			s.goErrs = append(s.goErrs, "go runtime: "+err.Error())
			return
		}
		s.rt, s.gv = rt, newGoView(s.p, rt)
	})
}

// Go returns the Go binary, nil for a process without Go.
func (s *Space) Go() *goruntime.Binary { s.loadGo(); return s.bin }

// Runtime returns the Go runtime's view, nil for a process without Go
// (or one whose runtime structures cannot be read: Problems says why).
func (s *Space) Runtime() *goruntime.Runtime { s.loadGo(); return s.rt }

// Heap returns the Go heap reader, nil when there is none.
func (s *Space) Heap() *goruntime.Heap { s.loadGo(); return s.heap }

// Problems lists what could not be read about the Go runtime.
func (s *Space) Problems() []string { s.loadGo(); return append([]string(nil), s.goErrs...) }

// Classify says what addr is.
func (s *Space) Classify(addr uint64) *Region {
	r := &Region{Addr: coredump.Addr(addr)}
	s.classify(r, addr)
	if r.Summary == "" {
		r.Summary = r.Kind.String()
	}
	if r.TLS != nil && r.Kind != TLS {
		r.Summary += fmt.Sprintf("; it is also the TLS of thread %d: %s", r.TLS.TID, r.TLS.What)
	}
	return r
}

func (s *Space) classify(r *Region, addr uint64) {
	p := s.p
	if p.Arch == coredump.ArchAMD64 && addr >= 1<<47 && addr < 0xffff800000000000 {
		r.Kind, r.Dangling, r.Why = NonCanonical, true, "non-canonical address"
		r.Summary = fmt.Sprintf("%#x is a non-canonical address: bits 47-63 differ, so no pointer can hold it (a corrupted or uninitialised pointer)", addr)
		return
	}
	if addr >= 0xffff800000000000 {
		r.Kind, r.Dangling, r.Why = KernelAddr, true, "kernel address"
		r.Summary = fmt.Sprintf("%#x is in the kernel's half of the address space", addr)
		return
	}
	m := p.FindMapping(addr)
	if m == nil {
		s.classifyUnmapped(r, addr)
		return
	}
	r.Mapping = s.mappingInfo(m, addr)
	r.Readable = p.Readable(addr, 1)
	s.annotateTLS(r, addr)

	s.loadGo()
	if s.heap != nil {
		if ha, ok, err := s.heap.Lookup(addr); ok {
			r.Heap = ha
			if err != nil {
				r.Notes = append(r.Notes, err.Error())
			}
			s.classifyGoHeap(r, ha)
			return
		}
	}
	if st := s.stackAt(addr); st != nil {
		r.Kind, r.Stack = ThreadStack, st
		if st.Kind != NativeStack {
			r.Kind = GoStack
		}
		if r.TLS != nil && !r.TLS.goM {
			r.Kind = TLS
			r.Summary = fmt.Sprintf("TLS of thread %d (%s), at the top of its stack", r.TLS.TID, r.TLS.What)
			return
		}
		r.Summary = stackSummary(st, addr)
		if st.Live != nil && !*st.Live {
			r.Dangling, r.Why = true, "below the stack pointer: a dead stack frame"
		}
		return
	}
	if m.Perm == 0 {
		if st := s.guardOf(m); st != nil {
			r.Kind, r.Stack, r.Dangling, r.Why = GuardPage, st, true, "guard page"
			r.Summary = fmt.Sprintf("guard page below the stack of %s (%s-%s): the stack overflowed into it, or a pointer ran off the stack's end",
				st.Owner(), st.Lo, st.Hi)
			return
		}
		r.Kind, r.Dangling, r.Why = Reserved, true, "inaccessible reservation"
		r.Summary = fmt.Sprintf("inaccessible (PROT_NONE) reservation %s", r.Mapping)
		return
	}
	if r.TLS != nil && !r.TLS.goM {
		r.Kind = TLS
		r.Summary = fmt.Sprintf("TLS of thread %d: %s", r.TLS.TID, r.TLS.What)
		return
	}
	if im := s.imageAt(addr, m); im != nil {
		r.Image = s.imageInfo(im, addr)
		r.Kind = ImageMemory
		if r.Image.Go && isGoDataSection(r.Image.Section) {
			r.Kind = GoData
		}
		r.Summary = imageSummary(r.Image, m)
		return
	}
	if ch := s.cHeapAt(addr, m); ch != nil {
		r.Kind, r.CHeap = CHeap, ch
		r.Summary = ch.summary(addr)
		if ch.InUse != nil && !*ch.InUse {
			r.Dangling, r.Why = true, "freed C heap chunk"
		}
		return
	}
	if m.FileBacked() {
		r.Kind = FileMapping
		r.Summary = fmt.Sprintf("mapping of file %s at file offset %#x (%s)", m.Path, r.Mapping.FileOffset, m.Perm)
		return
	}
	r.Kind = Anonymous
	r.Summary = fmt.Sprintf("anonymous memory %s", r.Mapping)
}

func (s *Space) mappingInfo(m *coredump.Mapping, addr uint64) *MappingInfo {
	mi := &MappingInfo{Start: coredump.Addr(m.Start), End: coredump.Addr(m.End), Perm: m.Perm.String()}
	if m.Path != "" {
		mi.File = m.Path
		if m.FileBacked() && addr >= m.Start {
			mi.FileOffset = m.Offset + (addr - m.Start)
		} else if m.FileBacked() {
			mi.FileOffset = m.Offset
		}
	}
	mi.Role = s.mappingRole(m)
	return mi
}

// mappingRole names what a mapping is used for, when that is known
// without classifying an address in it.
func (s *Space) mappingRole(m *coredump.Mapping) string {
	s.loadThreads()
	for _, t := range s.threads {
		if t.lo >= m.Start && t.lo < m.End || t.hi > m.Start && t.hi <= m.End {
			return fmt.Sprintf("stack of thread %d", t.tid)
		}
	}
	if m.Image != nil {
		return ""
	}
	if s.heap != nil && s.heap.Contains(m.Start) {
		return "Go heap arena"
	}
	return ""
}

func (s *Space) classifyUnmapped(r *Region, addr uint64) {
	r.Kind, r.Dangling, r.Why = Unmapped, true, "not mapped"
	below, above := s.p.MappingsAround(addr)
	if below != nil {
		r.Below = s.mappingInfo(below, below.Start)
		r.Below.Distance = addr - below.End
	}
	if above != nil {
		r.Above = s.mappingInfo(above, above.Start)
		r.Above.Distance = above.Start - addr
	}
	if addr < nullPageLimit {
		r.Kind, r.Why = NullPage, "nil pointer"
		r.Summary = fmt.Sprintf("%#x is in the null page: a nil pointer plus offset %#x", addr, addr)
		return
	}
	// The kernel keeps a gap (stack_guard_gap, 256 pages) below a stack
	// that grows down, so an overflow of the main thread's stack faults
	// in unmapped memory just below it.
	if above != nil && above.Start-addr <= stackGuardGap {
		s.loadThreads()
		for _, t := range s.threads {
			if t.lo >= above.Start && t.lo < above.End {
				st := t.info()
				st.Guard = true
				r.Kind, r.Stack, r.Why = GuardPage, st, "stack guard gap"
				r.Summary = fmt.Sprintf("%#x is %d bytes below the stack of %s (%s-%s), in the unmapped guard gap the kernel keeps below a growing stack",
					addr, above.Start-addr, st.Owner(), st.Lo, st.Hi)
				return
			}
		}
	}
	r.Summary = fmt.Sprintf("%#x is not mapped", addr)
	var around []string
	if r.Below != nil {
		around = append(around, fmt.Sprintf("%#x bytes past the end of %s", r.Below.Distance, r.Below))
	}
	if r.Above != nil {
		around = append(around, fmt.Sprintf("%#x bytes below the start of %s", r.Above.Distance, r.Above))
	}
	if len(around) > 0 {
		r.Summary += ": " + strings.Join(around, "; ")
	}
}

// stackGuardGap is the kernel's default stack_guard_gap (256 pages).
const stackGuardGap = 256 << 12

func (s *Space) classifyGoHeap(r *Region, ha *goruntime.HeapAddr) {
	r.Kind = GoHeap
	addr := uint64(ha.Addr)
	switch ha.State {
	case goruntime.ObjectStack:
		r.Kind = GoStack
		st := s.goStackAt(addr)
		if st == nil {
			st = &StackInfo{Kind: GoroutineStack, Lo: ha.Span.Start, Hi: coredump.Addr(ha.Span.End()), Freed: true}
			r.Stack = st
			r.Dangling, r.Why = true, "freed stack span"
			r.Summary = fmt.Sprintf("Go stack span %s-%s that no goroutine uses: a freed stack, or one left behind when its goroutine's stack grew and moved",
				st.Lo, st.Hi)
			return
		}
		r.Stack = st
		r.Summary = stackSummary(st, addr)
		switch {
		case st.Freed:
			r.Dangling, r.Why = true, "stack of a dead goroutine"
		case st.Live != nil && !*st.Live:
			r.Dangling, r.Why = true, "below the stack pointer: a dead stack frame"
		}
		return
	case goruntime.ObjectFreePage:
		r.Dangling, r.Why = true, "free Go heap page"
		r.Summary = fmt.Sprintf("Go heap arena %s, page not in any span in use (free or released)", ha.Arena)
		return
	case goruntime.ObjectSpanTail:
		r.Dangling, r.Why = true, "past the last object of its span"
		r.Summary = fmt.Sprintf("Go heap span %s-%s (size class %d), past its last object", ha.Span.Start,
			coredump.Addr(ha.Span.End()), ha.Span.SizeClass)
		return
	}
	obj := fmt.Sprintf("object %s+%#x (%d-byte slot %d of span %s, size class %d", ha.Object, ha.Offset,
		ha.Span.ElemSize, ha.Index, ha.Span.Start, ha.Span.SizeClass)
	if ha.Span.SizeClass == 0 {
		obj = fmt.Sprintf("large object %s+%#x (span %s, %d pages", ha.Object, ha.Offset, ha.Span.Start, ha.Span.NPages)
	}
	if ha.Span.NoScan {
		obj += ", no pointers"
	}
	obj += ")"
	typ := ""
	if ha.Type != "" {
		typ = " of type " + ha.Type
	}
	switch ha.State {
	case goruntime.ObjectAllocated:
		r.Summary = "Go heap: allocated " + obj + typ
	case goruntime.ObjectFree:
		r.Dangling, r.Why = true, "free Go heap slot"
		r.Summary = "Go heap: FREE slot, " + obj + ": the GC freed what was there (or it was never allocated)"
	case goruntime.ObjectGarbage:
		r.Dangling, r.Why = true, "unreachable Go heap object"
		r.Summary = "Go heap: " + obj + typ + " that the last GC found unreachable; it is freed at the next sweep"
	}
}

func stackSummary(st *StackInfo, addr uint64) string {
	s := fmt.Sprintf("stack of %s (%s-%s", st.Owner(), st.Lo, st.Hi)
	if st.Status != "" && st.Kind == GoroutineStack {
		s += ", " + st.Status
	}
	s += ")"
	if st.Freed {
		return s + ": the goroutine is dead; its stack is cached for reuse"
	}
	if st.Live == nil {
		return s
	}
	if *st.Live {
		return s + fmt.Sprintf(", live part: %d bytes above SP %s", addr-uint64(st.SP), st.SP)
	}
	return s + fmt.Sprintf(", DEAD part: %d bytes below SP %s (%s)", uint64(st.SP)-addr, st.SP, st.SPSource)
}

// goStackAt finds the Go-owned stack holding addr.
func (s *Space) goStackAt(addr uint64) *StackInfo {
	if s.gv == nil {
		return nil
	}
	var dead *goStack
	for i := range s.gv.Stacks {
		g := &s.gv.Stacks[i]
		if addr < g.Lo || addr >= g.Hi {
			continue
		}
		if g.Dead {
			dead = g
			continue
		}
		return g.info(addr)
	}
	if dead != nil {
		st := dead.info(addr)
		st.Freed = true
		return st
	}
	return nil
}

func (g *goStack) info(addr uint64) *StackInfo {
	st := &StackInfo{Kind: g.Kind, Goroutine: g.Goid, G: coredump.Addr(g.G), TID: g.TID, Lo: coredump.Addr(g.Lo),
		Hi: coredump.Addr(g.Hi), Status: g.Status}
	if g.M >= 0 {
		m := g.M
		st.M = &m
	}
	if g.SP != 0 && !g.Dead {
		st.SP, st.SPSource = coredump.Addr(g.SP), g.SPSource
		live := addr >= g.SP
		st.Live = &live
	}
	return st
}

func imageSummary(im *ImageInfo, m *coredump.Mapping) string {
	s := im.Path
	if im.Section != "" {
		s += " " + im.Section
	}
	if w := im.Where(); w != "" {
		if im.Inside {
			s += ", in " + w
		} else {
			s += fmt.Sprintf(", %#x bytes past %s (size %d)", im.Offset-im.SymbolSize, im.Symbol, im.SymbolSize)
		}
	}
	kind := "C"
	if im.Go {
		kind = "Go"
	}
	if isGoDataSection(im.Section) || im.Section == ".data" || im.Section == ".bss" {
		s = kind + " global: " + s
	}
	return fmt.Sprintf("%s (%s)", s, m.Perm)
}

func isGoDataSection(sec string) bool {
	switch sec {
	case ".data", ".bss", ".noptrdata", ".noptrbss", ".go.buildinfo":
		return true
	}
	return false
}

// section is an allocated ELF section at its run-time address.
type section struct {
	name       string
	start, end uint64
}

func (s *Space) sections(im *coredump.Image) []section {
	s.secMu.Lock()
	defer s.secMu.Unlock()
	if secs, ok := s.secs[im]; ok {
		return secs
	}
	var out []section
	if f, err := im.ELF(); err == nil {
		for _, sec := range f.Sections {
			if sec.Flags&0x2 == 0 || sec.Size == 0 { // SHF_ALLOC
				continue
			}
			out = append(out, section{name: sec.Name, start: sec.Addr + im.Bias, end: sec.Addr + im.Bias + sec.Size})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	s.secs[im] = out
	return out
}

// imageAt returns the image whose mapping or section holds addr: the
// zero-filled tail of .bss lies in an anonymous mapping after the file's
// last page.
func (s *Space) imageAt(addr uint64, m *coredump.Mapping) *coredump.Image {
	if m.Image != nil {
		return m.Image
	}
	if m.FileBacked() {
		return nil
	}
	for _, im := range s.p.Images {
		if addr < im.Base || addr-im.End > 1<<30 {
			continue
		}
		for _, sec := range s.sections(im) {
			if addr >= sec.start && addr < sec.end {
				return im
			}
		}
	}
	return nil
}

// imageEnd is the end of an image's highest section (its .bss).
func (s *Space) imageEnd(im *coredump.Image) uint64 {
	end := im.End
	for _, sec := range s.sections(im) {
		end = max(end, sec.end)
	}
	return end
}

func (s *Space) imageInfo(im *coredump.Image, addr uint64) *ImageInfo {
	info := &ImageInfo{Path: im.Path}
	for _, sec := range s.sections(im) {
		if addr >= sec.start && addr < sec.end {
			info.Section = sec.name
			break
		}
	}
	if sym, ok := nearestSymbol(im, addr); ok {
		info.Symbol, info.SymbolAddr, info.SymbolSize = sym.Name, coredump.Addr(sym.Addr), sym.Size
		info.Offset = addr - sym.Addr
		info.Inside = sym.Size == 0 || addr < sym.Addr+sym.Size
		s.loadGo()
		info.Go = im.IsExe && s.bin != nil && isGoSymbol(sym.Name)
	}
	return info
}

// nearestSymbol returns the symbol covering addr, else the nearest symbol
// below it in the same section-free sense (any kind).
func nearestSymbol(im *coredump.Image, addr uint64) (coredump.Symbol, bool) {
	if sym, ok := im.SymbolAt(addr); ok && (sym.Size > 0 || sym.Addr == addr || sym.Kind == elf.STT_FUNC) {
		return sym, true
	}
	// Data without a covering symbol (string literals, padding): name the
	// nearest sized symbol below, within a page.
	syms := im.Symbols()
	i := sort.Search(len(syms), func(i int) bool { return syms[i].Addr > addr }) - 1
	for ; i >= 0 && addr-syms[i].Addr < 4096; i-- {
		if syms[i].Size > 0 {
			return syms[i], true
		}
	}
	return coredump.Symbol{}, false
}

// isGoSymbol reports whether a symbol name is a Go one: package-qualified
// (main.x, runtime.y, example.com/pkg.z) or a Go linker symbol (go:...).
func isGoSymbol(name string) bool {
	if strings.HasPrefix(name, "go:") || strings.HasPrefix(name, "type:") {
		return true
	}
	if strings.HasPrefix(name, "_cgo_") || strings.HasPrefix(name, "__") || strings.HasPrefix(name, "x_cgo_") {
		return false
	}
	dot := strings.IndexByte(name, '.')
	return dot > 0 && dot < len(name)-1
}
