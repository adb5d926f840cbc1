package memory

import (
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

// StackKind says whose stack a range of memory is.
type StackKind uint8

const (
	// GoroutineStack is the stack of an ordinary goroutine.
	GoroutineStack StackKind = iota + 1
	// SystemStack is an M's g0 stack: the thread's own stack when cgo
	// created it, runtime-allocated otherwise. C code called through cgo
	// runs on it.
	SystemStack
	// SignalStack is an M's gsignal stack (its sigaltstack).
	SignalStack
	// NativeStack is an OS thread's own stack as its mapping shows it
	// (a C program's threads, the main thread, a cgo M's pthread stack).
	NativeStack
)

var stackKindNames = [...]string{GoroutineStack: "goroutine", SystemStack: "g0", SignalStack: "gsignal", NativeStack: "thread"}

func (k StackKind) String() string {
	if int(k) < len(stackKindNames) && stackKindNames[k] != "" {
		return stackKindNames[k]
	}
	return fmt.Sprintf("StackKind(%d)", uint8(k))
}

// MarshalText writes the kind by name.
func (k StackKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// goStack is one stack the Go runtime owns, with its current stack pointer.
type goStack struct {
	Kind   StackKind
	Goid   int64  // goroutine id; 0 for g0 and gsignal
	G      uint64 // address of the g
	Lo, Hi uint64
	// SP is the lowest live address: the thread's SP when the stack is
	// running, syscallsp for a goroutine in a syscall or cgo call, else
	// sched.sp; 0 when unknown.
	SP       uint64
	SPSource string
	Status   string // goroutine state name
	Dead     bool   // a _Gdead goroutine: its stack (if any) is cached for reuse
	TID      int    // the thread running it, 0 when none
	M        int64  // m.id of the M it belongs to or runs on, -1 when none
}

// goView is the part of the Go runtime's state that classification needs:
// every stack the runtime owns and which thread runs which M, as package
// goruntime reads them (allgs, allm, the thread↔M join).
type goView struct {
	Stacks []goStack
	// MOfThread maps a tid to its M's id.
	MOfThread map[int]int64
}

func newGoView(p *coredump.Process, rt *goruntime.Runtime) *goView {
	v := &goView{MOfThread: map[int]int64{}, Stacks: make([]goStack, 0, len(rt.Gs)+len(rt.Dead)+2*len(rt.Ms))}
	tidOfM := map[*goruntime.M]int{}
	threadSP := map[int]uint64{}
	for _, t := range rt.Threads() {
		threadSP[t.TID] = t.Core.Regs.SP()
		if t.M != nil {
			tidOfM[t.M] = t.TID
			v.MOfThread[t.TID] = t.M.ID
		}
	}
	type mInfo struct {
		id  int64
		tid int
	}
	mOfG := map[uint64]mInfo{}
	for _, m := range rt.Ms {
		tid := tidOfM[m]
		if m.CurGAddr != 0 {
			mOfG[m.CurGAddr] = mInfo{m.ID, tid}
		}
		for _, sg := range []struct {
			g    *goruntime.G
			kind StackKind
		}{{m.G0, SystemStack}, {m.Gsignal, SignalStack}} {
			if sg.g == nil || !plausibleStack(p, sg.g.StackLo, sg.g.StackHi) {
				continue
			}
			st := goStack{Kind: sg.kind, G: sg.g.Addr, Lo: sg.g.StackLo, Hi: sg.g.StackHi, TID: tid, M: m.ID, Status: "system"}
			// Only the thread's own SP says where a system stack's live
			// part ends: C code called through cgo runs below
			// g0.sched.sp, so that is no bound.
			if sp := threadSP[tid]; tid != 0 && sp >= st.Lo && sp < st.Hi {
				st.SP, st.SPSource = sp, fmt.Sprintf("thread %d's SP", tid)
			}
			v.Stacks = append(v.Stacks, st)
		}
	}
	add := func(g *goruntime.G, dead bool) {
		if !plausibleStack(p, g.StackLo, g.StackHi) {
			return
		}
		st := goStack{Kind: GoroutineStack, Goid: g.ID, G: g.Addr, Lo: g.StackLo, Hi: g.StackHi, M: -1,
			Status: g.StatusName(), Dead: dead}
		if mi, ok := mOfG[g.Addr]; ok && !dead {
			st.TID, st.M = mi.tid, mi.id
		}
		switch {
		case dead:
		case g.InSyscall() && g.OnStack(g.SyscallSP):
			st.SP, st.SPSource = g.SyscallSP, "g.syscallsp"
		case st.TID != 0 && g.OnStack(threadSP[st.TID]):
			st.SP, st.SPSource = threadSP[st.TID], fmt.Sprintf("thread %d's SP", st.TID)
		case g.OnStack(g.Sched.SP):
			st.SP, st.SPSource = g.Sched.SP, "g.sched.sp"
		}
		v.Stacks = append(v.Stacks, st)
	}
	for _, g := range rt.Gs {
		add(g, false)
	}
	for _, g := range rt.Dead {
		add(g, true)
	}
	return v
}

// maxStackBytes bounds a believable stack: the runtime's default
// maxstacksize is 1 GB on 64-bit.
const maxStackBytes = 1 << 30

// plausibleStack checks stack bounds read from a g: both ends in one
// mapping and no bigger than any real stack. The runtime records a rough
// guess for the main thread's g0 on some C libraries (static musl gives
// [0x3d8, SP+...)).
func plausibleStack(p *coredump.Process, lo, hi uint64) bool {
	if hi <= lo || hi-lo > maxStackBytes {
		return false
	}
	m := p.FindMapping(lo)
	return m != nil && m.Contains(hi-1)
}

// GoroutineStacks lists the stacks of the goroutines that are not dead.
func (s *Space) GoroutineStacks() []*StackInfo {
	s.loadGo()
	if s.gv == nil {
		return nil
	}
	var out []*StackInfo
	for i := range s.gv.Stacks {
		g := &s.gv.Stacks[i]
		if g.Kind == GoroutineStack && !g.Dead {
			out = append(out, g.info(g.SP))
		}
	}
	return out
}
