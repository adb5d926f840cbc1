package diagnose

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

// Holder is a goroutine that likely holds a lock others wait for (or, for
// a channel, that could send on it or close it), with what shows it.
type Holder struct {
	G *goruntime.G
	// Frame is the frame that took the lock or refers to the object, its
	// code position: its stack addresses (SP, CFA) are not set.
	Frame *goruntime.Frame
	// Strong reports both signs: the frame's function calls the lock
	// function and refers to the same object. A frame with only one of
	// them is a weak candidate.
	Strong   bool
	Evidence []Evidence
}

// Functions whose call takes a lock; an inlined fast path (sync.Mutex.Lock
// is inlined) leaves a call to the slow path in the caller's code.
var (
	mutexLockFuncs   = []string{"sync.(*Mutex).Lock", "sync.(*Mutex).lockSlow", "sync.(*Mutex).TryLock", "internal/sync.(*Mutex).Lock", "internal/sync.(*Mutex).lockSlow", "internal/sync.(*Mutex).TryLock"}
	rwWriteLockFuncs = []string{"sync.(*RWMutex).Lock", "sync.(*RWMutex).TryLock"}
	rwReadLockFuncs  = []string{"sync.(*RWMutex).RLock", "sync.(*RWMutex).TryRLock", "sync.runtime_SemacquireRWMutexR"}
	// A goroutine a WaitGroup waits for still has a call to Done (Add,
	// once Done is inlined) ahead of where it is.
	waitGroupDoneFuncs = []string{"sync.(*WaitGroup).Done", "sync.(*WaitGroup).Add"}
)

// holderLockFuncs are the calls a holder of o made: for readers waiting on
// an RWMutex a writer holds it; a writer waits for the readers or for
// another writer.
func holderLockFuncs(o *WaitObject) []string {
	switch {
	case o.Kind == "sync.Mutex":
		return mutexLockFuncs
	case o.Kind == "sync.RWMutex" && o.Mode == "RLock":
		return rwWriteLockFuncs
	case o.Kind == "sync.RWMutex":
		return append(slices.Clone(rwReadLockFuncs), rwWriteLockFuncs...)
	case o.Kind == "sync.WaitGroup":
		return waitGroupDoneFuncs
	}
	return nil
}

// isBlockingFunc reports the functions inside which a goroutine is taking
// a lock rather than holding one.
func isBlockingFunc(fn string) bool {
	return slices.Contains(mutexLockFuncs, fn) || slices.Contains(rwWriteLockFuncs, fn) || slices.Contains(rwReadLockFuncs, fn) ||
		strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "sync.runtime_")
}

// maxContainerOffset bounds the offset of a lock inside the struct that
// embeds it, for recognising pointers to that struct.
const maxContainerOffset = 4096

// Holders finds the goroutines that likely hold o: not waiting on it, with
// a frame whose function takes this kind of lock and refers to the same
// object, either in its code (a global variable) or in its stack frame (a
// pointer to the object or to the struct embedding it, the same pointer
// the waiters hold). For a channel it finds the goroutines holding a
// reference to it, which could send on it or close it.
func (h *HangFacts) Holders(o *WaitObject) (strong, weak HolderSet) {
	if r, ok := h.holders[o]; ok {
		return r.strong, r.weak
	}
	strong, weak = h.findHolders(o)
	h.holders[o] = holdersResult{strong, weak}
	return strong, weak
}

type holdersResult struct{ strong, weak HolderSet }

// HolderSet is the goroutines that hold an object in one way (strong or
// weak evidence): how many, and the first of them.
type HolderSet struct {
	// First are the maxListedHolders holders with the lowest goroutine
	// ids, in that order.
	First []*Holder
	Count int
	// Working counts the holders that were not waiting: running,
	// runnable or in a system call.
	Working int
}

// maxListedHolders bounds HolderSet.First: a finding names a few, and a
// big bucket can make every one of its goroutines a holder.
const maxListedHolders = 16

// add counts g as a holder, keeping it when it is among the first; mk
// makes the Holder only then.
func (s *HolderSet) add(g *goruntime.G, mk func() *Holder) {
	s.Count++
	if !g.Waiting() {
		s.Working++
	}
	if len(s.First) == maxListedHolders && g.ID >= s.First[len(s.First)-1].G.ID {
		return
	}
	i, _ := slices.BinarySearchFunc(s.First, g.ID, func(h *Holder, id int64) int { return cmp.Compare(h.G.ID, id) })
	s.First = slices.Insert(s.First, i, mk())
	if len(s.First) > maxListedHolders {
		s.First = s.First[:maxListedHolders]
	}
}

// findHolders works a stack bucket at a time: the members share their
// frames, so what a frame's code does is decided once for all of them;
// only the pointers in their frames are each goroutine's own.
func (h *HangFacts) findHolders(o *WaitObject) (strong, weak HolderSet) {
	lockFuncs := holderLockFuncs(o)
	lo, hi, global := globalRange(h.p, o.Addr)
	if o.holderHi != 0 {
		lo, hi, global = o.holderLo, o.holderHi, true
	}
	targets := h.targetsOf(o)
	for _, b := range h.RT.Buckets(0) {
		var members []*goruntime.G
		for _, g := range b.Goroutines {
			if !g.IsSystem() && !slices.Contains(h.WaitsOf(g), o) {
				members = append(members, g)
			}
		}
		if len(members) == 0 {
			continue
		}
		// What each member holds, by frame; Holders are made only for
		// the few a HolderSet keeps.
		type cand struct {
			frame        int
			found, final bool // a frame ties it; the tie is strong
			ev           []Evidence
		}
		cands := make([]cand, len(members))
		left := len(members)
		var onStack [][]stackRef // the members' stack words, once needed
		for i := range b.Frames {
			if left == 0 {
				break
			}
			fr := &b.Frames[i]
			if fr.Kind != goruntime.FrameGo || fr.Func == "" || fr.Inlined || isBlockingFunc(fr.Func) {
				continue
			}
			lockCall, objRef, codeEv := h.codeTies(o, fr, lockFuncs, lo, hi, global)
			// Pointers in the frame: needed to confirm a lock call, and
			// for the objects whose holders are only the goroutines that
			// can reach them (channels, wait groups, bare semaphores).
			needWords := !objRef && (lockCall || !isLock(o))
			if !objRef && !needWords {
				continue
			}
			if needWords && onStack == nil {
				h.indexStacks()
				onStack = make([][]stackRef, len(members))
				for k, g := range members {
					onStack[k] = h.onStack[g.Index]
				}
			}
			for k, g := range members {
				if cands[k].final {
					continue
				}
				ref, ev := objRef, codeEv
				if needWords {
					if sr, why, ok := stackRefIn(onStack[k], i, targets); ok {
						ref = true
						e := Ev(fmt.Sprintf("%s's frame holds %#x (%s)", fr.Func, sr.value, why), sr.slot, fmt.Sprintf("stack of goroutine %d", g.ID))
						e.Value = fmt.Sprintf("%#x", sr.value)
						ev = append(slices.Clip(ev), e)
					}
				}
				switch {
				case ref && (lockCall || lockFuncs == nil):
					// Without lock functions (channels, wait groups
					// without Done ahead) a reference is all there is:
					// final, but weak.
					cands[k] = cand{frame: i, found: true, final: true, ev: ev}
					left--
				case ref && !cands[k].found:
					cands[k] = cand{frame: i, found: true, ev: ev}
				}
			}
		}
		for k, c := range cands {
			if !c.found {
				continue
			}
			g, fr, ev := members[k], &b.Frames[c.frame], c.ev
			isStrong := c.final && lockFuncs != nil
			set := &weak
			if isStrong {
				set = &strong
			}
			set.add(g, func() *Holder {
				own := *fr
				own.SP, own.CFA, own.G = 0, 0, g
				return &Holder{G: g, Frame: &own, Strong: isStrong, Evidence: ev}
			})
		}
	}
	return strong, weak
}

// codeTies is what the code of frame fr's function says about o: whether
// it calls one of lockFuncs, and whether it refers to the global variable
// [lo, hi) that holds o.
func (h *HangFacts) codeTies(o *WaitObject, fr *goruntime.Frame, lockFuncs []string, lo, hi uint64, global bool) (lockCall, objRef bool, ev []Evidence) {
	fn, refs, _ := h.funcRefs(frameFuncPC(fr))
	for _, r := range refs {
		switch {
		case r.Call && !lockCall && lockFuncs != nil:
			if f, ok := h.RT.Funcs.FuncAt(r.Target); ok && f.Entry == r.Target && slices.Contains(lockFuncs, f.Name()) {
				if o.Kind == "sync.WaitGroup" {
					// Only a call still ahead: the Add that started the
					// count is behind its caller.
					if r.At < fr.PC {
						continue
					}
					lockCall = true
					ev = append(ev, Ev(fmt.Sprintf("%s has yet to call %s", fn.Name(), f.Name()), r.At, "machine code of "+fn.Name()))
					continue
				}
				lockCall = true
				ev = append(ev, Ev(fmt.Sprintf("%s calls %s", fn.Name(), f.Name()), r.At, "machine code of "+fn.Name()))
			}
		case !r.Call && global && !objRef && r.Target >= lo && r.Target < hi:
			objRef = true
			ev = append(ev, Ev(fmt.Sprintf("%s refers to %s", fn.Name(), globalName(h.p, r.Target)), r.At, "machine code of "+fn.Name()))
		}
	}
	return lockCall, objRef, ev
}

// targetsOf are the addresses whose presence in a frame ties the frame to
// o, with what each is: o itself, the struct embedding it, the heap
// object holding it.
func (h *HangFacts) targetsOf(o *WaitObject) map[uint64]string {
	if t, ok := h.targets[o]; ok {
		return t
	}
	targets := map[uint64]string{o.Addr: "the object itself"}
	if o.Kind != "channel" {
		for c, why := range h.containers(o) {
			targets[c] = why
		}
		// A lock inside a heap object: pointers to the object hold it.
		if r := h.region(o.Addr); r != nil && r.Heap != nil && r.Heap.Live() && uint64(r.Heap.DataStart) < o.Addr {
			targets[uint64(r.Heap.DataStart)] = fmt.Sprintf("the heap object holding the %s at offset %#x", o.Kind, o.Addr-uint64(r.Heap.DataStart))
		}
	}
	h.targets[o] = targets
	return targets
}

// stackRef is a word of a goroutine's stack that points at a target of
// one of the objects.
type stackRef struct {
	frame int // the frame holding it: an index into the goroutine's stack
	slot  uint64
	value uint64
}

// stackRefIn returns the word of refs in frame i that is one of targets.
func stackRefIn(refs []stackRef, i int, targets map[uint64]string) (stackRef, string, bool) {
	for _, sr := range refs {
		if sr.frame != i {
			continue
		}
		if why, ok := targets[sr.value]; ok {
			return sr, why, true
		}
	}
	return stackRef{}, "", false
}

// Bounds of the stack scan: a chunk read at a time, and how much of one
// goroutine's stack (from its innermost frame up) is looked at.
const (
	stackScanChunk = 64 << 10
	maxStackScan   = 16 << 20
)

// indexStacks finds, once for all objects, the words of every goroutine's
// stack that point at an object's targets (one read of each stack in use),
// keeping those that tie a goroutine to an object it does not wait on.
// Only a goroutine with such a word is unwound again, to place the word
// in a frame.
func (h *HangFacts) indexStacks() {
	if h.onStack != nil {
		return
	}
	h.onStack = make([][]stackRef, len(h.RT.Gs))
	owners := map[uint64][]*WaitObject{}
	for _, o := range h.Objects {
		for t := range h.targetsOf(o) {
			owners[t] = append(owners[t], o)
		}
	}
	// Most words are not targets: a bitmap of their hashes answers
	// before the map does.
	var filter [1 << 16 / 64]uint64
	for t := range owners {
		k := targetHash(t)
		filter[k/64] |= 1 << (k % 64)
	}
	buf := make([]byte, stackScanChunk)
	var found []stackRef
	gs := h.RT.Gs
	defer h.p.Progress("scanning goroutine stacks", len(gs), len(gs))
	for n, g := range gs {
		if n%4096 == 0 {
			h.p.Progress("scanning goroutine stacks", n, len(gs))
		}
		if g.IsSystem() {
			continue
		}
		lo, hi, ok := h.RT.StackInUse(g)
		if !ok {
			continue
		}
		hi = min(hi, lo+maxStackScan)
		found = found[:0]
		for a := lo &^ 7; a < hi; a += stackScanChunk {
			b := buf[:min(uint64(len(buf)), hi-a)]
			m, _ := h.p.ReadMemory(b, a) // scan the m readable bytes only
			for off := 0; off+8 <= m; off += 8 {
				v := binary.LittleEndian.Uint64(b[off:])
				if k := targetHash(v); filter[k/64]&(1<<(k%64)) == 0 {
					continue
				}
				if objs := owners[v]; objs != nil && h.tiesOther(g, objs) {
					found = append(found, stackRef{slot: a + uint64(off), value: v})
				}
			}
			if m < len(b) {
				break
			}
		}
		var refs []stackRef
		for _, sr := range found {
			if i, ok := h.RT.FrameAt(g, sr.slot); ok {
				sr.frame = i
				refs = append(refs, sr)
			}
		}
		h.onStack[g.Index] = refs
	}
}

func targetHash(v uint64) uint64 { return (v>>3 ^ v>>19) & (1<<16 - 1) }

// tiesOther reports that objs includes an object g does not wait on: a
// waiter's pointer to what it waits on says nothing about who holds it.
func (h *HangFacts) tiesOther(g *goruntime.G, objs []*WaitObject) bool {
	for _, o := range objs {
		if !slices.Contains(h.WaitsOf(g), o) {
			return true
		}
	}
	return false
}

// isLock reports the objects a goroutine holds by locking them.
func isLock(o *WaitObject) bool { return o.Kind == "sync.Mutex" || o.Kind == "sync.RWMutex" }

// frameFuncPC is a pc inside the frame's function: a return address may
// point just past the function's end when the call is its last
// instruction.
func frameFuncPC(fr *goruntime.Frame) uint64 {
	if fr.Entry != 0 {
		return fr.Entry
	}
	if fr.Trap || fr.PC == 0 {
		return fr.PC
	}
	return fr.PC - 1
}

// containers finds the pointers the waiters hold to the struct that embeds
// o: a word at most maxContainerOffset below o's address found in the
// frame of the function that waits, in at least half of the waiters
// looked at (the first maxContainerWaiters).
func (h *HangFacts) containers(o *WaitObject) map[uint64]string {
	counts := map[uint64]int{}
	looked := 0
	for _, w := range o.Waiters {
		if looked == maxContainerWaiters {
			break
		}
		if w.Where == nil {
			continue
		}
		fr := h.OwnFrame(w.G, w.frame)
		if fr == nil {
			continue
		}
		looked++
		seen := map[uint64]bool{}
		for _, v := range h.frameWords(fr) {
			if v < o.Addr && o.Addr-v <= maxContainerOffset && !seen[v] {
				seen[v] = true
				counts[v]++
			}
		}
	}
	out := map[uint64]string{}
	for v, n := range counts {
		if 2*n >= looked && n > 0 {
			out[v] = fmt.Sprintf("the struct that holds the %s at offset %#x, as the waiters' frames do", o.Kind, o.Addr-v)
		}
	}
	return out
}

// maxContainerWaiters is how many waiters' frames containers looks at: a
// pointer most waiters hold shows in a sample.
const maxContainerWaiters = 64
