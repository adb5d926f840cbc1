package goruntime

import (
	"errors"
	"fmt"
	"github.com/coreexplain/coreexplain/coredump"
	"slices"
	"sort"
	"strings"
)

// MaxGoroutineFrames bounds a goroutine's unwound stack by default; a
// deeper stack (runaway recursion) is cut there with ErrStackTruncated.
const MaxGoroutineFrames = 2048

// Stack unwinds goroutine g as the runtime's own traceback does: from
// the saved context of a parked goroutine, from the system call entry of
// one in a syscall (or cgo call), and, for a running goroutine, from the
// registers of its thread. max bounds the physical frames (0: the
// default).
func (r *Runtime) Stack(g *G, max int) Stack {
	if max <= 0 {
		max = MaxGoroutineFrames
	}
	u, _ := r.unwinders.Get().(*unwinder)
	if u == nil {
		u = r.newUnwinder(false, nil, g, max)
	}
	defer r.unwinders.Put(u)
	phys, err := r.goroutinePhys(g, max, u)
	if b := g.bucket; b != nil && b.goOnly && physMatch(b.key, phys) {
		// The same frames as the bucket's first goroutine: copy its
		// symbolised frames rather than look every pc up again, and give
		// them this goroutine's stack addresses.
		return Stack{Frames: b.framesAt(phys, g), Err: err}
	}
	return Stack{Frames: r.expand(phys, nil), Err: err}
}

// StackInUse bounds the part of goroutine g's stack that holds frames:
// from where its innermost frame begins (its saved context, its system
// call entry, or its thread's stack pointer while it runs) up to the top
// of the stack. ok is false when that start is not on g's stack.
func (r *Runtime) StackInUse(g *G) (lo, hi uint64, ok bool) {
	sp := g.Sched.SP
	switch {
	case g.SyscallSP != 0 && (g.InSyscall() || g.Running()):
		sp = g.SyscallSP
	case g.Running():
		if t := r.threadRunning(g); t != nil && t.Core != nil {
			if tsp := t.Core.Regs.SP(); tsp >= g.StackLo && tsp < g.StackHi {
				sp = tsp
			}
		}
	}
	if sp < g.StackLo || sp >= g.StackHi {
		return 0, 0, false
	}
	return sp, g.StackHi, true
}

// FrameAt returns the index, in g's frames, of the frame whose stack
// memory [SP, CFA) holds addr; for a frame with functions inlined into
// it, the index of its own, outermost function. Goroutines with the same
// stack have frames of the same sizes (a frame's size is a function of
// its pc), so g's frames are those of its bucket's first goroutine moved
// by the distance between their stack pointers, and g need not be
// unwound again.
func (r *Runtime) FrameAt(g *G, addr uint64) (int, bool) {
	b := r.BucketOf(g)
	if b != nil && b.goOnly && len(b.Frames) > 0 {
		rep := b.Goroutines[0]
		lo, _, ok1 := r.StackInUse(g)
		repLo, _, ok2 := r.StackInUse(rep)
		if ok1 && ok2 && b.Frames[0].SP == repLo && b.onOwnStack() {
			return frameHolding(b.Frames, addr-lo+repLo)
		}
	}
	return frameHolding(r.Stack(g, 0).Frames, addr)
}

func frameHolding(frames []Frame, addr uint64) (int, bool) {
	for i, fr := range frames {
		if !fr.Inlined && fr.SP <= addr && addr < fr.CFA {
			return i, true
		}
	}
	return 0, false
}

// onOwnStack reports that every frame of the bucket is on its first
// goroutine's own stack (no switch to a system stack).
func (b *Bucket) onOwnStack() bool {
	rep := b.Goroutines[0]
	for _, fr := range b.Frames {
		if fr.G != rep {
			return false
		}
	}
	return true
}

// BucketOf returns goroutine g's bucket of identical stacks at the default
// depth, walking every goroutine on first use; nil for a g that is not
// one of Gs.
func (r *Runtime) BucketOf(g *G) *Bucket {
	r.sharedBuckets(0) // sets g.bucket; no copy of the list per call
	return g.bucket
}

// goroutinePhys unwinds g into physical frames with u, which it resets
// (its buffers are reused from walk to walk).
func (r *Runtime) goroutinePhys(g *G, max int, u *unwinder) ([]physFrame, error) {
	var t *Thread
	if g.Running() {
		if t = r.threadRunning(g); t != nil {
			phys, err := r.runningPhys(t, g, max)
			if err != errRunningOnSystemStack {
				return phys, err
			}
		}
	}
	u.reset(false, nil, g, max)
	u.regs.Arch = coredump.ArchAMD64
	switch {
	case g.SyscallSP != 0 && (g.InSyscall() || g.Running()):
		u.regs.SetPC(g.SyscallPC)
		u.regs.SetSP(g.SyscallSP)
		u.syscall = true
	default:
		u.regs.SetPC(g.Sched.PC)
		u.regs.SetSP(g.Sched.SP)
		u.regs.SetFP(g.Sched.BP)
	}
	if u.regs.PC() == 0 && u.regs.SP() != 0 {
		// A nil function call: start in the caller (runtime/traceback.go).
		pc, err := u.read(u.regs.SP())
		if err != nil {
			return nil, err
		}
		u.regs.SetPC(pc)
		u.regs.SetSP(u.regs.SP() + 8)
	}
	u.run()
	if g.Running() && t == nil && u.err == nil {
		u.err = errors.New("goroutine is running on a thread not in the core: stack from its last saved context")
	}
	return u.out, u.err
}

var errRunningOnSystemStack = errors.New("running on the system stack")

// threadRunning returns the thread whose M runs g.
func (r *Runtime) threadRunning(g *G) *Thread {
	for _, t := range r.Threads() {
		if t.M != nil && t.M.CurGAddr == g.Addr {
			return t
		}
	}
	return nil
}

// runningPhys takes a running goroutine's frames from its thread: the
// frames on the goroutine's own stack, past the signal handlers.
func (r *Runtime) runningPhys(t *Thread, g *G, max int) ([]physFrame, error) {
	var out []physFrame
	for i, f := range t.phys {
		if f.g == g && len(out) == 0 && f.kind == FrameGo {
			// The thread reached the goroutine's stack by a systemstack
			// or morestack jump: the goroutine itself is parked in its
			// saved context, as the runtime prints it.
			if pi := r.pcinfo(f.pc, f.trap); pi.ok && pi.f.Kind() == KindSystemstack && i > 0 && f.sp == g.Sched.SP {
				return nil, errRunningOnSystemStack
			}
		}
		if f.g == g && f.kind != FrameSignal {
			out = append(out, f)
			if len(out) == max {
				return out, ErrStackTruncated
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("goroutine %d runs on thread %d, but no frame of that thread is on its stack", g.ID, t.TID)
	}
	return out, t.Stack.Err
}

// Bucket is a group of goroutines with identical stacks, state and
// creator (panicparse's buckets, built from frames, not from text).
type Bucket struct {
	// State is what the runtime prints in the goroutine header: the wait
	// reason of a waiting goroutine, else the status.
	State  string
	Status string
	// WaitReason is set for waiting goroutines.
	WaitReason string
	// Locked reports goroutines locked to their thread.
	Locked bool
	Frames []Frame
	// CreatedBy is the go statement that created the goroutines.
	CreatedBy *Frame
	// Goroutines are the members, in allgs order.
	Goroutines []*G
	// Crashing marks the bucket of the goroutine that crashed.
	Crashing bool
	// System marks buckets of the runtime's own goroutines.
	System bool
	// Err is why the representative stack is incomplete, if it is.
	Err error
	// MaxWaitNanos is the longest wait recorded among the members.
	MaxWaitNanos int64

	// key is what the members share: state words, then one word per
	// physical frame (bucketKey).
	key []uint64
	// goOnly reports frames that are all Go frames, each physical frame
	// expanded to its logical ones in order, so that framesAt can give
	// them another member's stack addresses.
	goOnly bool
}

// keyHeader is how many words of a bucket key precede the frames.
const keyHeader = 4

// physMatch reports that phys are the physical frames of a bucket key.
func physMatch(key []uint64, phys []physFrame) bool {
	if len(key) != keyHeader+len(phys) {
		return false
	}
	for i, f := range phys {
		if key[keyHeader+i] != frameKey(f) {
			return false
		}
	}
	return true
}

func frameKey(f physFrame) uint64 {
	k := f.pc << 2
	if f.trap {
		k |= 1
	}
	if f.kind != FrameGo {
		k |= 2
	}
	return k
}

// framesAt returns a copy of the bucket's frames at the stack addresses
// of phys, another member's physical frames.
func (b *Bucket) framesAt(phys []physFrame, g *G) []Frame {
	out := slices.Clone(b.Frames)
	j := 0
	for i := range out {
		if j >= len(phys) {
			break
		}
		out[i].SP, out[i].CFA, out[i].G = phys[j].sp, phys[j].cfa, phys[j].g
		if !out[i].Inlined {
			j++
		}
	}
	return out
}

// IDs returns the members' goroutine ids.
func (b *Bucket) IDs() []int64 {
	ids := make([]int64, len(b.Goroutines))
	for i, g := range b.Goroutines {
		ids[i] = g.ID
	}
	return ids
}

type bucketBuild struct {
	b    *Bucket
	next *bucketBuild
}

// Buckets unwinds every goroutine and groups identical stacks, the
// biggest bucket first, the crashing goroutine's bucket before all. max
// bounds each stack's physical frames (0: the default).
//
// The walk is done once per bound; callers get their own slice of shared
// buckets, which they must not modify.
func (r *Runtime) Buckets(max int) []*Bucket { return slices.Clone(r.sharedBuckets(max)) }

// sharedBuckets are the buckets of the walk at depth max, walking on
// first use; the slice is the cache's own.
func (r *Runtime) sharedBuckets(max int) []*Bucket {
	if max <= 0 {
		max = MaxGoroutineFrames
	}
	r.bucketsMu.Lock()
	defer r.bucketsMu.Unlock()
	bs, ok := r.buckets[max]
	if !ok {
		bs = r.bucketize(max)
		if r.buckets == nil {
			r.buckets = map[int][]*Bucket{}
		}
		r.buckets[max] = bs
	}
	return bs
}

func (r *Runtime) bucketize(max int) []*Bucket {
	var crashG *G
	if c, err := r.Crash(); err == nil && c != nil {
		crashG = c.G
	}
	table := map[uint64]*bucketBuild{}
	var order []*bucketBuild
	var phys []physFrame
	var key []uint64
	u := r.newUnwinder(false, nil, nil, max)
	now := r.nowEstimate()
	defer r.Proc.Progress("unwinding goroutines", len(r.Gs), len(r.Gs))
	for i, g := range r.Gs {
		if i%progressEvery == 0 {
			r.Proc.Progress("unwinding goroutines", i, len(r.Gs))
		}
		var err error
		phys, err = r.goroutinePhys(g, max, u)
		key = key[:0]
		key = append(key, uint64(g.Status&^r.off.gScan), uint64(g.WaitReason), g.GoPC)
		if g.LockedMAddr != 0 {
			key = append(key, 1)
		} else {
			key = append(key, 0)
		}
		goOnly := true
		for _, f := range phys {
			key = append(key, frameKey(f))
			goOnly = goOnly && f.kind == FrameGo
		}
		h := hashKey(key)
		var bb *bucketBuild
		for c := table[h]; c != nil; c = c.next {
			if slices.Equal(c.b.key, key) {
				bb = c
				break
			}
		}
		if bb == nil {
			b := &Bucket{State: g.Header(), Status: g.StatusName(), WaitReason: g.WaitReasonName(),
				Locked: g.LockedMAddr != 0, Frames: r.expand(phys, nil), Err: err, System: g.IsSystem()}
			if g.GoPC != 0 && g.ID != 1 {
				b.CreatedBy = r.creatorFrame(g)
			}
			b.key, b.goOnly = slices.Clone(key), goOnly
			bb = &bucketBuild{b: b, next: table[h]}
			table[h] = bb
			order = append(order, bb)
		}
		bb.b.Goroutines = append(bb.b.Goroutines, g)
		if max == MaxGoroutineFrames {
			g.bucket = bb.b
		}
		if g == crashG {
			bb.b.Crashing = true
		}
		if g.WaitSince != 0 && now > g.WaitSince && now-g.WaitSince > bb.b.MaxWaitNanos {
			bb.b.MaxWaitNanos = now - g.WaitSince
		}
	}
	out := make([]*Bucket, len(order))
	for i, bb := range order {
		out[i] = bb.b
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Crashing != b.Crashing {
			return a.Crashing
		}
		if len(a.Goroutines) != len(b.Goroutines) {
			return len(a.Goroutines) > len(b.Goroutines)
		}
		if a.System != b.System {
			return !a.System
		}
		return a.Goroutines[0].ID < b.Goroutines[0].ID
	})
	return out
}

// progressEvery is how many goroutines a walk handles between progress
// reports.
const progressEvery = 4096

// hashKey is FNV-1a over the words of a bucket key.
func hashKey(v []uint64) uint64 {
	h := uint64(14695981039346656037)
	for _, x := range v {
		for i := 0; i < 64; i += 8 {
			h ^= (x >> i) & 0xff
			h *= 1099511628211
		}
	}
	return h
}

// creatorFrame is the go statement that created g ("created by F in
// goroutine N"), positioned as the runtime prints it.
func (r *Runtime) creatorFrame(g *G) *Frame {
	f, ok := r.Funcs.FuncAt(g.GoPC)
	if !ok {
		return nil
	}
	pc := g.GoPC
	if pc > f.Entry {
		pc--
	}
	file, line := f.FileLine(pc)
	return &Frame{PC: g.GoPC, Func: f.Name(), Entry: f.Entry, File: file, Line: line, Kind: FrameGo}
}

// CreatedBy is the go statement that created g, nil for goroutine 1 and
// when unknown.
func (r *Runtime) CreatedBy(g *G) *Frame {
	if g.ID == 1 || g.GoPC == 0 {
		return nil
	}
	return r.creatorFrame(g)
}

// nowEstimate is a lower bound of the runtime's nanotime at the crash:
// the latest timestamp the runtime recorded (a goroutine's waitsince, the
// scheduler's last network poll).
func (r *Runtime) nowEstimate() int64 {
	var now int64
	for _, g := range r.Gs {
		now = max(now, g.WaitSince)
	}
	if a, _, ok := r.global("runtime.sched"); ok {
		if off, err := r.Binary.Layout.Off("runtime.schedt", "lastpoll"); err == nil {
			if v, err := r.Proc.ReadUint64(a + uint64(off)); err == nil {
				now = max(now, int64(v))
			}
		}
	}
	return now
}

// PrintName is a function name as the runtime's traceback prints it:
// runtime.gopanic as "panic", generic shape arguments as "[...]".
func PrintName(name string) string {
	if name == "runtime.gopanic" {
		return "panic"
	}
	i := strings.IndexByte(name, '[')
	if i < 0 {
		return name
	}
	j := strings.LastIndexByte(name, ']')
	if j <= i {
		return name
	}
	return name[:i] + "[...]" + name[j+1:]
}

// IsStdlib reports whether a function belongs to the Go distribution (the
// runtime and the standard library) rather than to the program or a
// module it depends on: its package is in no module the binary's build
// information lists.
func (r *Runtime) IsStdlib(fn string) bool {
	if fn == "" || strings.HasPrefix(fn, "main.") || strings.HasPrefix(fn, "_cgoexp_") {
		return false
	}
	pkg := fn
	if i := strings.LastIndexByte(pkg, '/'); i >= 0 {
		if j := strings.IndexByte(pkg[i:], '.'); j >= 0 {
			pkg = pkg[:i+j]
		}
	} else if j := strings.IndexByte(pkg, '.'); j >= 0 {
		pkg = pkg[:j]
	}
	if bi := r.Binary.BuildInfo; bi != nil {
		inModule := func(path string) bool {
			return path != "" && (pkg == path || strings.HasPrefix(pkg, path+"/"))
		}
		if inModule(bi.Main.Path) {
			return false
		}
		for _, d := range bi.Deps {
			if inModule(d.Path) {
				return false
			}
		}
	}
	// Standard library import paths have no dot in their first element.
	first, _, _ := strings.Cut(pkg, "/")
	return !strings.Contains(first, ".")
}
