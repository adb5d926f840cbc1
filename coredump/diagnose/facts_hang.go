package diagnose

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/coredump/insn"
	"github.com/coreexplain/coreexplain/coredump/memory"
)

// HangFacts is what hang analysis knows about a process: every goroutine's
// stack, and what each blocked goroutine waits on, grouped by object.
type HangFacts struct {
	RT *goruntime.Runtime
	// Objects are the objects goroutines wait on, most waiters first.
	Objects []*WaitObject
	// Now is the runtime's clock (nanotime) at the snapshot, 0 when
	// unknown; NowExact says it was read (a live process) rather than
	// bounded from below by the latest time the runtime recorded.
	Now      int64
	NowExact bool

	p       *coredump.Process
	holders map[*WaitObject]holdersResult
	refs    map[uint64]codeRefsResult
	waitOf  [][]*WaitObject // by goroutine index
	offs    syncOffsets
	targets map[*WaitObject]map[uint64]string
	// onStack are the words of goroutine stacks that point at the
	// objects, by goroutine index (indexStacks); nil until needed.
	onStack [][]stackRef
}

type codeRefsResult struct {
	refs []CodeRef
	err  error
}

type hangKey struct{}

type hangResult struct {
	h   *HangFacts
	err error
}

// Hang returns the hang analysis facts, computed once.
func (f *Facts) Hang() (*HangFacts, error) {
	res := f.Proc.Cached(hangKey{}, func() any {
		h, err := loadHang(f)
		return &hangResult{h, err}
	}).(*hangResult)
	return res.h, res.err
}

// WaitObject is one thing goroutines are blocked on: a sync.Mutex, a
// sync.RWMutex, a sync.WaitGroup, a bare runtime semaphore or a channel,
// with the goroutines waiting on it.
type WaitObject struct {
	Kind string // "sync.Mutex", "sync.RWMutex", "sync.WaitGroup", "semaphore", "channel"
	// Addr is the object: the mutex, the wait group, the semaphore word,
	// the channel's runtime.hchan.
	Addr uint64
	// Sema is the semaphore word the waiters sleep on (all but channels).
	Sema uint64
	// Name is the global variable that holds the object ("main.journal",
	// "main.cfg+0x10"); "" when no symbol covers it.
	Name string
	// Mode is what the waiters want: "Lock", "RLock", "Wait", "Acquire",
	// "receive", "send" or "select".
	Mode    string
	Waiters []*Waiter
	// Source says where the waits were read.
	Source string

	// holderLo and holderHi bound the global variable that holds a
	// pointer to the object (a channel in a global), whose uses in code
	// show who can reach it.
	holderLo, holderHi uint64
}

// Waiter is a goroutine blocked on a WaitObject.
type Waiter struct {
	G *goruntime.G
	// Func is the function that waits: the first frame outside the
	// runtime and package sync.
	Func string
	// Where is that function's frame for its code position (function,
	// file, line, pc). It is the frame of G's stack bucket, shared by the
	// goroutines with the same stack: its stack addresses are the
	// bucket's first goroutine's. OwnFrame(G, frame) has G's own.
	Where *goruntime.Frame
	frame int
	// WaitNanos is how long it has waited, -1 when the runtime did not
	// record when the wait began.
	WaitNanos int64
}

// Label names the object: "sync.Mutex main.journal", "channel 0xc000...".
func (o *WaitObject) Label() string {
	if o.Name != "" {
		return o.Kind + " " + o.Name
	}
	return fmt.Sprintf("%s at %#x", o.Kind, o.Addr)
}

// FuncCount is a function and how many goroutines are in it.
type FuncCount struct {
	Func  string
	Count int
}

// WaitingFuncs counts the waiters by the function that waits, most first.
func (o *WaitObject) WaitingFuncs() []FuncCount {
	counts := map[string]int{}
	for _, w := range o.Waiters {
		counts[w.Func]++
	}
	out := make([]FuncCount, 0, len(counts))
	for f, n := range counts {
		out = append(out, FuncCount{f, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Func < out[j].Func
	})
	return out
}

// LongestWait is the longest recorded wait among the waiters, -1 when none
// was recorded.
func (o *WaitObject) LongestWait() (int64, *Waiter) {
	best, who := int64(-1), (*Waiter)(nil)
	for _, w := range o.Waiters {
		if w.WaitNanos > best {
			best, who = w.WaitNanos, w
		}
	}
	return best, who
}

// syncOffsets are the layouts of package sync's types, from DWARF with
// the values every release since Go 1.9 has as fallback.
type syncOffsets struct {
	mutexSema, rwW, rwWriterSem, rwReaderSem, rwReaderCount, wgSema int64
}

func (o *syncOffsets) resolve(l *goruntime.Layout) {
	get := func(def int64, typ string, paths ...string) int64 {
		for _, p := range paths {
			if v, err := l.Off(typ, p); err == nil {
				return v
			}
		}
		return def
	}
	o.mutexSema = get(4, "sync.Mutex", "sema", "mu.sema")
	o.rwW = get(0, "sync.RWMutex", "w")
	o.rwWriterSem = get(8, "sync.RWMutex", "writerSem")
	o.rwReaderSem = get(12, "sync.RWMutex", "readerSem")
	o.rwReaderCount = get(16, "sync.RWMutex", "readerCount")
	o.wgSema = get(8, "sync.WaitGroup", "sema")
}

// maxFrameBytes bounds the bytes of one stack frame scanned for pointers.
const maxFrameBytes = 64 << 10

func loadHang(f *Facts) (*HangFacts, error) {
	p := f.Proc
	rt, err := goruntime.Load(p)
	if err != nil {
		return nil, err
	}
	h := &HangFacts{RT: rt, p: p, refs: map[uint64]codeRefsResult{}, waitOf: make([][]*WaitObject, len(rt.Gs)),
		holders: map[*WaitObject]holdersResult{}, targets: map[*WaitObject]map[uint64]string{}}
	h.offs.resolve(rt.Binary.Layout)
	if now, ok := p.Clock(); ok {
		h.Now, h.NowExact = now, true
	} else {
		for _, g := range rt.Gs {
			h.Now = max(h.Now, g.WaitSince)
		}
	}
	objects := map[objectKey]*WaitObject{}
	add := func(k objectKey, sema uint64, source string, g *goruntime.G) {
		o := objects[k]
		if o == nil {
			o = &WaitObject{Kind: k.kind, Addr: k.addr, Mode: k.mode, Sema: sema, Source: source, Name: globalName(p, k.addr)}
			objects[k] = o
		}
		w := &Waiter{G: g, WaitNanos: -1}
		frames := h.frames(g)
		if i := userFrame(frames); i >= 0 {
			w.Where, w.Func, w.frame = &frames[i], frames[i].Func, i
		}
		if g.WaitSince > 0 && h.Now >= g.WaitSince {
			w.WaitNanos = h.Now - g.WaitSince
		}
		o.Waiters = append(o.Waiters, w)
		h.waitOf[g.Index] = append(h.waitOf[g.Index], o)
	}

	semas, err := h.semaWaiters()
	if err != nil {
		f.Note("hang analysis: runtime semaphore table: %v", err)
	}
	for _, g := range rt.Gs {
		if !g.Waiting() {
			continue
		}
		if w, ok := semas[g.Addr]; ok {
			add(h.classifySema(g, w.Sema), w.Sema, "runtime.semtable", g)
			continue
		}
		mode := chanMode(g.WaitReasonName())
		if mode == "" {
			continue
		}
		chans, err := h.chansOf(g)
		if err != nil {
			f.Note("hang analysis: goroutine %d's channel waits: %v", g.ID, err)
		}
		for _, c := range chans {
			add(objectKey{"channel", c, mode}, 0, "g.waiting", g)
		}
	}
	for _, o := range objects {
		h.Objects = append(h.Objects, o)
	}
	h.nameChannels()
	sort.Slice(h.Objects, func(i, j int) bool {
		a, b := h.Objects[i], h.Objects[j]
		if len(a.Waiters) != len(b.Waiters) {
			return len(a.Waiters) > len(b.Waiters)
		}
		if a.Addr != b.Addr {
			return a.Addr < b.Addr
		}
		// One channel can have receivers and, in selects, other waiters.
		return a.Kind+" "+a.Mode < b.Kind+" "+b.Mode
	})
	return h, nil
}

type objectKey struct {
	kind string
	addr uint64
	mode string
}

// frames are goroutine g's frames for what they say about code
// (functions, files, lines, pcs): the frames of its stack bucket, shared
// by the goroutines with the same stack, whose stack addresses are the
// bucket's first goroutine's.
func (h *HangFacts) frames(g *goruntime.G) []goruntime.Frame {
	if b := h.RT.BucketOf(g); b != nil {
		return b.Frames
	}
	return h.RT.Stack(g, 0).Frames
}

// OwnFrame is frame i of goroutine g's stack, its stack addresses
// included; nil when g's stack has no frame i.
func (h *HangFacts) OwnFrame(g *goruntime.G, i int) *goruntime.Frame {
	st := h.RT.Stack(g, 0)
	if i < 0 || i >= len(st.Frames) {
		return nil
	}
	return &st.Frames[i]
}

// maxGlobalBytes bounds one global variable scanned for channel pointers.
const maxGlobalBytes = 1 << 20

// nameChannels names each channel after the global variable that holds
// it, when one does ("channel main.jobs"): one pass over the executable's
// data symbols.
func (h *HangFacts) nameChannels() {
	// A channel can be several objects: its receivers, its senders,
	// the selects waiting on it.
	want := map[uint64][]*WaitObject{}
	for _, o := range h.Objects {
		if o.Kind == "channel" && o.Name == "" {
			want[o.Addr] = append(want[o.Addr], o)
		}
	}
	if len(want) == 0 || h.p.Exe == nil {
		return
	}
	for _, s := range h.p.Exe.Symbols() {
		if s.Kind != elf.STT_OBJECT || s.Size < 8 || s.Size > maxGlobalBytes || s.Addr%8 != 0 {
			continue
		}
		b := make([]byte, s.Size)
		if _, err := h.p.ReadMemory(b, s.Addr); err != nil {
			continue
		}
		for off := 0; off+8 <= len(b); off += 8 {
			v := binary.LittleEndian.Uint64(b[off:])
			for _, o := range want[v] {
				if o.Name != "" {
					continue
				}
				o.Name, o.holderLo, o.holderHi = s.Name, s.Addr, s.Addr+s.Size
				if off > 0 {
					o.Name = fmt.Sprintf("%s+%#x", s.Name, off)
				}
			}
		}
	}
}

// region classifies an address (Go heap object, stack, C heap, ...), nil
// when the address space cannot say.
func (h *HangFacts) region(addr uint64) *memory.Region {
	r := memory.For(h.p).Classify(addr)
	if r == nil || r.Kind == memory.Unmapped {
		return nil
	}
	return r
}

// WaitsOf returns the objects goroutine g waits on.
func (h *HangFacts) WaitsOf(g *goruntime.G) []*WaitObject {
	if g.Index < 0 || g.Index >= len(h.waitOf) {
		return nil
	}
	return h.waitOf[g.Index]
}

// chanMode maps a wait reason to what a goroutine wants from a channel.
func chanMode(reason string) string {
	switch {
	case strings.HasPrefix(reason, "chan receive"):
		return "receive"
	case strings.HasPrefix(reason, "chan send"):
		return "send"
	case strings.HasPrefix(reason, "select") && reason != "select (no cases)":
		return "select"
	}
	return ""
}

// classifySema works out which sync object a semaphore waiter waits on,
// from its wait reason and the sync frames on its stack.
func (h *HangFacts) classifySema(g *goruntime.G, sema uint64) objectKey {
	st := h.frames(g)
	o := h.offs
	switch reason := g.WaitReasonName(); {
	case reason == "sync.RWMutex.RLock":
		return objectKey{"sync.RWMutex", sema - uint64(o.rwReaderSem), "RLock"}
	case reason == "sync.RWMutex.Lock":
		// Waiting on writerSem for the readers to leave.
		return objectKey{"sync.RWMutex", sema - uint64(o.rwWriterSem), "Lock"}
	case reason == "sync.WaitGroup.Wait" || hasFrame(st, "sync.(*WaitGroup).Wait"):
		return objectKey{"sync.WaitGroup", sema - uint64(o.wgSema), "Wait"}
	case reason == "sync.Mutex.Lock" || hasFrame(st, "sync.(*Mutex).Lock", "sync.(*Mutex).lockSlow", "internal/sync.(*Mutex).lockSlow"):
		mu := sema - uint64(o.mutexSema)
		if hasFrame(st, "sync.(*RWMutex).Lock") {
			// The writers' mutex inside an RWMutex: another writer has it.
			return objectKey{"sync.RWMutex", mu - uint64(o.rwW), "Lock"}
		}
		return objectKey{"sync.Mutex", mu, "Lock"}
	}
	return objectKey{"semaphore", sema, "Acquire"}
}

// semaWaiters reads the runtime's semaphore table.
func (h *HangFacts) semaWaiters() (map[uint64]SemaWait, error) {
	if h.p.Exe == nil {
		return nil, errors.New("no executable")
	}
	table, ok := h.p.Exe.LookupSymbol("runtime.semtable")
	if !ok {
		return nil, errors.New("runtime.semtable is not in the symbol table (stripped binary): lock waiters are not grouped by mutex")
	}
	n, ok := h.RT.Binary.Layout.Const("runtime.semTabSize")
	if !ok {
		n = 251
	}
	return readSemaWaiters(h.p, h.RT.Binary.Layout, table, n)
}

// maxChanWaits bounds one goroutine's list of channel waits (a select has
// one per case).
const maxChanWaits = 1 << 16

// chansOf reads the channels goroutine g is blocked on: its g.waiting list
// of sudogs (one per select case) and their sudog.c.
func (h *HangFacts) chansOf(g *goruntime.G) ([]uint64, error) {
	l := h.RT.Binary.Layout
	waitingOff, err1 := l.Off("runtime.g", "waiting")
	cOff, err2 := l.Off("runtime.sudog", "c")
	linkOff, err3 := l.Off("runtime.sudog", "waitlink")
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	s, err := h.p.ReadUint64(g.Addr + uint64(waitingOff))
	if err != nil {
		return nil, err
	}
	var out []uint64
	seen := map[uint64]bool{}
	for ; s != 0 && !seen[s] && len(out) < maxChanWaits; s, err = h.p.ReadUint64(s + uint64(linkOff)) {
		if err != nil {
			return out, err
		}
		seen[s] = true
		c, err := h.p.ReadUint64(s + uint64(cOff))
		if err != nil {
			return out, err
		}
		if c != 0 {
			out = append(out, c)
		}
	}
	return out, err
}

// lockPlumbing reports the functions that implement blocking: the
// runtime, package sync and its internals. They are not what a user calls
// the code that waits or the code that holds a lock.
func lockPlumbing(fn string) bool {
	for _, p := range []string{"runtime.", "sync.", "internal/sync.", "sync/atomic.", "internal/runtime/"} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

// userFrame returns the index of the first frame outside the blocking
// plumbing, -1 when there is none.
func userFrame(frames []goruntime.Frame) int {
	for i := range frames {
		fr := &frames[i]
		if fr.Kind == goruntime.FrameGo && fr.Func != "" && !lockPlumbing(fr.Func) {
			return i
		}
	}
	return -1
}

func hasFrame(frames []goruntime.Frame, fns ...string) bool {
	for _, fr := range frames {
		for _, fn := range fns {
			if fr.Func == fn {
				return true
			}
		}
	}
	return false
}

// globalName names the global variable of the executable that holds addr,
// with the offset into it.
func globalName(p *coredump.Process, addr uint64) string {
	if p.Exe == nil {
		return ""
	}
	s, ok := p.Exe.SymbolAt(addr)
	if !ok || s.Kind != elf.STT_OBJECT || s.Size == 0 || addr >= s.Addr+s.Size {
		return ""
	}
	if addr == s.Addr {
		return s.Name
	}
	return fmt.Sprintf("%s+%#x", s.Name, addr-s.Addr)
}

// globalRange is the global variable of the executable that holds addr.
func globalRange(p *coredump.Process, addr uint64) (lo, hi uint64, ok bool) {
	if p.Exe == nil {
		return 0, 0, false
	}
	s, ok := p.Exe.SymbolAt(addr)
	if !ok || s.Kind != elf.STT_OBJECT || s.Size == 0 || addr >= s.Addr+s.Size {
		return 0, 0, false
	}
	return s.Addr, s.Addr + s.Size, true
}

// funcRefs returns the code references of the function containing pc.
func (h *HangFacts) funcRefs(pc uint64) (goruntime.Func, []CodeRef, error) {
	fn, ok := h.RT.Funcs.FuncAt(pc)
	if !ok {
		return fn, nil, fmt.Errorf("no Go function at %#x", pc)
	}
	r, ok := h.refs[fn.Entry]
	if !ok {
		r.refs, r.err = codeRefs(h.p, fn.Entry, fn.End())
		h.refs[fn.Entry] = r
	}
	return fn, r.refs, r.err
}

// frameWords reads the words of a frame's stack memory [SP, CFA).
func (h *HangFacts) frameWords(fr *goruntime.Frame) []uint64 {
	if fr.CFA <= fr.SP || fr.CFA-fr.SP > maxFrameBytes {
		return nil
	}
	b := make([]byte, fr.CFA-fr.SP)
	n, _ := h.p.ReadMemory(b, fr.SP) // the readable words of the frame only
	out := make([]uint64, n/8)
	for i := range out {
		out[i] = uint64(b[8*i]) | uint64(b[8*i+1])<<8 | uint64(b[8*i+2])<<16 | uint64(b[8*i+3])<<24 |
			uint64(b[8*i+4])<<32 | uint64(b[8*i+5])<<40 | uint64(b[8*i+6])<<48 | uint64(b[8*i+7])<<56
	}
	return out
}

// SemaWait is a goroutine parked on a runtime semaphore (semacquire): a
// sync.Mutex, sync.RWMutex, sync.WaitGroup or another user of the
// runtime's semaphore table.
type SemaWait struct {
	G     uint64 // the waiting g
	Sema  uint64 // the semaphore's address (sudog.elem)
	Sudog uint64
	// AcquireTime is the runtime's cputicks when it began to wait; only
	// recorded while block or mutex profiling is on.
	AcquireTime int64
}

// maxSemaWaiters bounds the walk of the semaphore table; target memory may
// be corrupt.
const maxSemaWaiters = 1 << 22

// readSemaWaiters walks runtime.semtable, the table of treaps (one per
// semaphore address, chained through waitlink) of the goroutines parked in
// semacquire, and returns them keyed by g.
func readSemaWaiters(p *coredump.Process, l *goruntime.Layout, table coredump.Symbol, tabSize int64) (map[uint64]SemaWait, error) {
	if tabSize <= 0 || table.Size == 0 || table.Size%uint64(tabSize) != 0 {
		return nil, fmt.Errorf("runtime.semtable of %d bytes does not hold %d roots", table.Size, tabSize)
	}
	stride := table.Size / uint64(tabSize)
	off := func(typ, field string) (uint64, error) {
		v, err := l.Off(typ, field)
		return uint64(v), err
	}
	var errs []error
	must := func(typ, field string) uint64 {
		v, err := off(typ, field)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	treapOff := must("runtime.semaRoot", "treap")
	gOff, elemOff := must("runtime.sudog", "g"), must("runtime.sudog", "elem")
	prevOff, nextOff := must("runtime.sudog", "prev"), must("runtime.sudog", "next")
	waitlinkOff := must("runtime.sudog", "waitlink")
	acqOff, _ := off("runtime.sudog", "acquiretime")
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := map[uint64]SemaWait{}
	seen := map[uint64]bool{}
	var firstErr error
	for i := uint64(0); i < uint64(tabSize); i++ {
		root, err := p.ReadUint64(table.Addr + i*stride + treapOff)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("semaphore root %d: %w", i, err)
			}
			continue
		}
		// Depth-first over the treap (prev/next are the children); each
		// node heads the list of waiters on one address.
		stack := []uint64{root}
		for len(stack) > 0 {
			node := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if node == 0 || seen[node] {
				continue
			}
			if len(seen) >= maxSemaWaiters {
				return out, fmt.Errorf("more than %d semaphore waiters: the table looks corrupt", maxSemaWaiters)
			}
			seen[node] = true
			sema, err := p.ReadUint64(node + elemOff)
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("sudog at %#x: %w", node, err)
				}
				continue
			}
			for s := node; s != 0; {
				g, err1 := p.ReadUint64(s + gOff)
				next, err2 := p.ReadUint64(s + waitlinkOff)
				if err := errors.Join(err1, err2); err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("sudog at %#x: %w", s, err)
					}
					break
				}
				w := SemaWait{G: g, Sema: sema, Sudog: s}
				if acqOff != 0 {
					if v, err := p.ReadUint64(s + acqOff); err == nil {
						w.AcquireTime = int64(v)
					}
				}
				if g != 0 {
					out[g] = w
				}
				if s != node {
					seen[s] = true
				}
				if next != 0 && seen[next] {
					break // a cycle
				}
				s = next
			}
			prev, err1 := p.ReadUint64(node + prevOff)
			next, err2 := p.ReadUint64(node + nextOff)
			if err1 == nil {
				stack = append(stack, prev)
			}
			if err2 == nil {
				stack = append(stack, next)
			}
		}
	}
	return out, firstErr
}

// CodeRef is a reference from machine code: a direct call, or a
// pc-relative memory operand (how Go code addresses a global variable).
type CodeRef struct {
	At     uint64 // the instruction
	Target uint64
	Call   bool
}

// maxFuncBytes bounds the code decoded for one function.
const maxFuncBytes = 1 << 20

// codeRefs decodes the amd64 machine code of [entry, end) and returns the
// calls and pc-relative operands in it.
func codeRefs(p *coredump.Process, entry, end uint64) ([]CodeRef, error) {
	if p.Arch != coredump.ArchAMD64 {
		return nil, fmt.Errorf("decoding %s code is not supported", p.Arch)
	}
	code, err := insn.ReadCode(p, p.Arch, entry, end, maxFuncBytes)
	if err != nil {
		return nil, err
	}
	var out []CodeRef
	for r := range code.Refs() {
		switch r.Kind {
		case insn.RefCall:
			out = append(out, CodeRef{At: r.At, Target: r.Target, Call: true})
		case insn.RefLoad, insn.RefAddr:
			out = append(out, CodeRef{At: r.At, Target: r.Target})
		}
	}
	return out, nil
}
