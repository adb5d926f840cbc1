package diagnose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

// Holder is a goroutine that likely holds a lock others wait for (or, for
// a channel, that could send on it or close it), with what shows it.
type Holder struct {
	G     *goruntime.G
	Frame *goruntime.Frame // the frame that took the lock or refers to the object
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

// maxHolderFrames bounds the frames examined for one object; a frame
// costs little unless its function takes the lock (its code is decoded
// once per function).
const maxHolderFrames = 2000000

// Holders finds the goroutines that likely hold o: not waiting on it, with
// a frame whose function takes this kind of lock and refers to the same
// object, either in its code (a global variable) or in its stack frame (a
// pointer to the object or to the struct embedding it, the same pointer
// the waiters hold). For a channel it finds the goroutines holding a
// reference to it, which could send on it or close it.
func (h *HangFacts) Holders(o *WaitObject) (strong, weak []*Holder) {
	if r, ok := h.holders[o]; ok {
		return r.strong, r.weak
	}
	strong, weak = h.findHolders(o)
	h.holders[o] = holdersResult{strong, weak}
	return strong, weak
}

type holdersResult struct{ strong, weak []*Holder }

func (h *HangFacts) findHolders(o *WaitObject) (strong, weak []*Holder) {
	waiting := map[*goruntime.G]bool{}
	for _, w := range o.Waiters {
		waiting[w.G] = true
	}
	lockFuncs := holderLockFuncs(o)
	lo, hi, global := globalRange(h.p, o.Addr)
	if o.holderHi != 0 {
		lo, hi, global = o.holderLo, o.holderHi, true
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
	budget := maxHolderFrames
	for _, g := range h.RT.Gs {
		if waiting[g] || g.IsSystem() {
			continue
		}
		st := h.Stack(g)
		var cand *Holder
		for i := range st.Frames {
			fr := &st.Frames[i]
			if budget--; budget < 0 {
				return strong, weak
			}
			if fr.Kind != goruntime.FrameGo || fr.Func == "" || fr.Inlined || isBlockingFunc(fr.Func) {
				continue
			}
			fn, refs, _ := h.funcRefs(frameFuncPC(fr))
			var ev []Evidence
			var lockCall, objRef bool
			for _, r := range refs {
				switch {
				case r.Call && !lockCall && lockFuncs != nil:
					if f, ok := h.RT.Funcs.FuncAt(r.Target); ok && f.Entry == r.Target && slices.Contains(lockFuncs, f.Name()) {
						if o.Kind == "sync.WaitGroup" {
							// Only a call still ahead: the Add that started
							// the count is behind its caller.
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
			// Pointers in the frame: needed to confirm a lock call, and
			// for the objects whose holders are only the goroutines that
			// can reach them (channels, wait groups, bare semaphores).
			if !objRef && (lockCall || !isLock(o)) {
				for j, w := range h.frameWords(fr) {
					if why, ok := targets[w]; ok {
						objRef = true
						e := Ev(fmt.Sprintf("%s's frame holds %#x (%s)", fr.Func, w, why), fr.SP+8*uint64(j), fmt.Sprintf("stack of goroutine %d", g.ID))
						e.Value = fmt.Sprintf("%#x", w)
						ev = append(ev, e)
						break
					}
				}
			}
			if objRef && (lockCall || lockFuncs == nil) {
				cand = &Holder{G: g, Frame: fr, Strong: lockFuncs != nil, Evidence: ev}
				break
			}
			if objRef && cand == nil {
				cand = &Holder{G: g, Frame: fr, Evidence: ev}
			}
		}
		switch {
		case cand == nil:
		case cand.Strong:
			strong = append(strong, cand)
		default:
			weak = append(weak, cand)
		}
	}
	return strong, weak
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
// frame of the function that waits, in at least half of the waiters.
func (h *HangFacts) containers(o *WaitObject) map[uint64]string {
	counts := map[uint64]int{}
	for _, w := range o.Waiters {
		if w.Frame == nil {
			continue
		}
		seen := map[uint64]bool{}
		for _, v := range h.frameWords(w.Frame) {
			if v < o.Addr && o.Addr-v <= maxContainerOffset && !seen[v] {
				seen[v] = true
				counts[v]++
			}
		}
	}
	out := map[uint64]string{}
	for v, n := range counts {
		if 2*n >= len(o.Waiters) && n > 0 {
			out[v] = fmt.Sprintf("the struct that holds the %s at offset %#x, as the waiters' frames do", o.Kind, o.Addr-v)
		}
	}
	return out
}
