package goruntime

import (
	"errors"
	"fmt"
	"github.com/coreexplain/coreexplain/coredump"
	"hash/maphash"
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
	phys, err := r.goroutinePhys(g, max, nil)
	return Stack{Frames: r.expand(phys, nil), Err: err}
}

// goroutinePhys unwinds g into physical frames, reusing buf.
func (r *Runtime) goroutinePhys(g *G, max int, buf []physFrame) ([]physFrame, error) {
	if g.Running() {
		if t := r.threadRunning(g); t != nil {
			return r.runningPhys(t, g, max)
		}
	}
	u := r.newUnwinder(false, nil, g, max)
	u.out = buf[:0]
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
	if g.Running() && u.err == nil {
		u.err = errors.New("goroutine is running on a thread not in the core: stack from its last saved context")
	}
	return u.out, u.err
}

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
	for _, f := range t.phys {
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
	key  []uint64
	next *bucketBuild
}

var bucketSeed = maphash.MakeSeed()

// Buckets unwinds every goroutine and groups identical stacks, the
// biggest bucket first, the crashing goroutine's bucket before all. max
// bounds each stack's physical frames (0: the default).
func (r *Runtime) Buckets(max int) []*Bucket {
	if max <= 0 {
		max = MaxGoroutineFrames
	}
	var crashG *G
	if c, err := r.Crash(); err == nil && c != nil {
		crashG = c.G
	}
	table := map[uint64]*bucketBuild{}
	var order []*bucketBuild
	var phys []physFrame
	var key []uint64
	now := r.nowEstimate()
	for _, g := range r.Gs {
		var err error
		phys, err = r.goroutinePhys(g, max, phys)
		key = key[:0]
		key = append(key, uint64(g.Status&^r.off.gScan), uint64(g.WaitReason), g.GoPC)
		if g.LockedMAddr != 0 {
			key = append(key, 1)
		} else {
			key = append(key, 0)
		}
		for _, f := range phys {
			k := f.pc << 2
			if f.trap {
				k |= 1
			}
			if f.kind != FrameGo {
				k |= 2
			}
			key = append(key, k)
		}
		h := maphash.Bytes(bucketSeed, u64bytes(key))
		var bb *bucketBuild
		for c := table[h]; c != nil; c = c.next {
			if slices.Equal(c.key, key) {
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
			bb = &bucketBuild{b: b, key: slices.Clone(key), next: table[h]}
			table[h] = bb
			order = append(order, bb)
		}
		bb.b.Goroutines = append(bb.b.Goroutines, g)
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

func u64bytes(v []uint64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		b[8*i] = byte(x)
		b[8*i+1] = byte(x >> 8)
		b[8*i+2] = byte(x >> 16)
		b[8*i+3] = byte(x >> 24)
		b[8*i+4] = byte(x >> 32)
		b[8*i+5] = byte(x >> 40)
		b[8*i+6] = byte(x >> 48)
		b[8*i+7] = byte(x >> 56)
	}
	return b
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
