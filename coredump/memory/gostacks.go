package memory

import (
	"errors"
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
// every stack the runtime owns and which thread runs which M.
//
// It reads runtime.allgs and runtime.allm itself, with offsets from the
// binary's Layout. It is the one place to switch over to the goroutine and
// thread API of package goruntime once that exists; nothing else in this
// package walks runtime structures.
type goView struct {
	Stacks []goStack
	// MOfThread maps a tid to its M's id.
	MOfThread map[int]int64
}

// Bounds on walking the runtime's lists: target memory is untrusted.
const (
	maxGoroutines = 1 << 22
	maxMs         = 1 << 14
)

type gLayout struct {
	lo, hi, status, goid, schedSP, syscallSP, m int64
	gsize                                       int64
	procid, mid, g0, gsignal, curg, alllink     int64
}

func loadGLayout(l *goruntime.Layout) (*gLayout, error) {
	gl := &gLayout{}
	g, err := l.Struct("runtime.g")
	if err != nil {
		return nil, err
	}
	m, err := l.Struct("runtime.m")
	if err != nil {
		return nil, err
	}
	gl.gsize = g.Size
	for _, x := range []struct {
		s   *goruntime.Struct
		dst *int64
		f   string
	}{
		{g, &gl.lo, "stack.lo"}, {g, &gl.hi, "stack.hi"}, {g, &gl.status, "atomicstatus"}, {g, &gl.goid, "goid"},
		{g, &gl.schedSP, "sched.sp"}, {g, &gl.syscallSP, "syscallsp"}, {g, &gl.m, "m"},
		{m, &gl.procid, "procid"}, {m, &gl.mid, "id"}, {m, &gl.g0, "g0"}, {m, &gl.gsignal, "gsignal"},
		{m, &gl.curg, "curg"}, {m, &gl.alllink, "alllink"},
	} {
		f, err := x.s.Field(x.f)
		if err != nil {
			return nil, err
		}
		*x.dst = f.Offset
	}
	return gl, nil
}

func loadGoView(p *coredump.Process, bin *goruntime.Binary) (*goView, error) {
	gl, err := loadGLayout(bin.Layout)
	if err != nil {
		return nil, fmt.Errorf("go runtime layout: %w", err)
	}
	v := &goView{MOfThread: map[int]int64{}}
	statusName := map[int64]string{}
	for name, val := range bin.Layout.Consts("runtime._G") {
		// _Grunning, _Gwaiting, ...; not _GCoff and friends.
		if st := name[len("runtime._G"):]; st != "" && st[0] >= 'a' && st[0] <= 'z' {
			statusName[val] = st
		}
	}
	threadSP := map[int]uint64{}
	for _, t := range p.Threads {
		threadSP[t.TID] = t.Regs.SP()
	}
	readG := func(g uint64) (lo, hi, goid, schedSP, syscallSP, mp uint64, status uint32, err error) {
		b := make([]byte, gl.gsize)
		if _, err = p.ReadMemory(b, g); err != nil {
			return
		}
		u64 := func(off int64) uint64 { return le.Uint64(b[off:]) }
		lo, hi, goid = u64(gl.lo), u64(gl.hi), u64(gl.goid)
		schedSP, syscallSP, mp = u64(gl.schedSP), u64(gl.syscallSP), u64(gl.m)
		status = le.Uint32(b[gl.status:])
		return
	}

	// Ms first: which thread runs which M, and their g0/gsignal stacks.
	type mInfo struct {
		id   int64
		tid  int
		curg uint64
	}
	mOfG := map[uint64]mInfo{}
	if allm, ok := bin.Symbol("runtime.allm"); ok {
		mp, err := p.ReadUint64(allm)
		seen := map[uint64]bool{}
		for n := 0; err == nil && mp != 0 && !seen[mp] && n < maxMs; n++ {
			seen[mp] = true
			procid, e1 := p.ReadUint64(mp + uint64(gl.procid))
			id, e2 := p.ReadUint64(mp + uint64(gl.mid))
			g0, e3 := p.ReadUint64(mp + uint64(gl.g0))
			gsig, e4 := p.ReadUint64(mp + uint64(gl.gsignal))
			curg, e5 := p.ReadUint64(mp + uint64(gl.curg))
			if err = errors.Join(e1, e2, e3, e4, e5); err != nil {
				break
			}
			tid := 0
			if procid != 0 && p.Thread(int(procid)) != nil {
				tid = int(procid)
				v.MOfThread[tid] = int64(id)
			}
			mi := mInfo{id: int64(id), tid: tid, curg: curg}
			if curg != 0 {
				mOfG[curg] = mi
			}
			for _, sg := range []struct {
				g    uint64
				kind StackKind
			}{{g0, SystemStack}, {gsig, SignalStack}} {
				if sg.g == 0 {
					continue
				}
				lo, hi, _, _, _, _, _, err := readG(sg.g)
				if err != nil || !plausibleStack(p, lo, hi) {
					continue
				}
				st := goStack{Kind: sg.kind, G: sg.g, Lo: lo, Hi: hi, TID: tid, M: int64(id), Status: "system"}
				// Only the thread's own SP says where a system stack's live
				// part ends: C code called through cgo runs below
				// g0.sched.sp, so that is no bound.
				if sp := threadSP[tid]; tid != 0 && sp >= lo && sp < hi {
					st.SP, st.SPSource = sp, fmt.Sprintf("thread %d's SP", tid)
				}
				v.Stacks = append(v.Stacks, st)
			}
			mp, err = p.ReadUint64(mp + uint64(gl.alllink))
		}
	}

	allgs, ok := bin.Symbol("runtime.allgs")
	if !ok {
		return v, errors.New("the binary has no runtime.allgs symbol")
	}
	ptr, err1 := p.ReadUint64(allgs)
	n, err2 := p.ReadUint64(allgs + 8)
	if err := errors.Join(err1, err2); err != nil {
		return v, fmt.Errorf("runtime.allgs: %w", err)
	}
	if n > maxGoroutines {
		return v, fmt.Errorf("runtime.allgs claims %d goroutines", n)
	}
	ptrs := make([]byte, n*8)
	if _, err := p.ReadMemory(ptrs, ptr); err != nil {
		return v, fmt.Errorf("runtime.allgs array: %w", err)
	}
	gsyscall := int64(3)
	gdead := int64(6)
	for name, val := range bin.Layout.Consts("runtime._G") {
		switch name {
		case "runtime._Gsyscall":
			gsyscall = val
		case "runtime._Gdead":
			gdead = val
		}
	}
	for i := range n {
		g := le.Uint64(ptrs[i*8:])
		if g == 0 {
			continue
		}
		lo, hi, goid, schedSP, syscallSP, _, status, err := readG(g)
		if err != nil {
			continue
		}
		st := goStack{Kind: GoroutineStack, Goid: int64(goid), G: g, Lo: lo, Hi: hi, M: -1}
		s := int64(status &^ 0x1000) // _Gscan
		st.Status = statusName[s]
		st.Dead = s == gdead
		if mi, ok := mOfG[g]; ok && !st.Dead {
			st.TID, st.M = mi.tid, mi.id
		}
		switch {
		case st.Dead:
		case s == gsyscall && syscallSP >= lo && syscallSP < hi:
			st.SP, st.SPSource = syscallSP, "g.syscallsp"
		case st.TID != 0 && threadSP[st.TID] >= lo && threadSP[st.TID] < hi:
			st.SP, st.SPSource = threadSP[st.TID], fmt.Sprintf("thread %d's SP", st.TID)
		case schedSP >= lo && schedSP < hi:
			st.SP, st.SPSource = schedSP, "g.sched.sp"
		}
		if plausibleStack(p, lo, hi) {
			v.Stacks = append(v.Stacks, st)
		}
	}
	return v, nil
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
