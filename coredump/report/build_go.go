package report

import (
	"errors"
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/diagnose"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

// Limits of the report without --all.
const (
	defaultBuckets      = 50
	defaultBucketFrames = 32
	defaultBucketIDs    = 100
)

// buildGo fills what the Go runtime's view knows: the Go version and full
// command line, the original signal, the crash site, the threads joined
// with Ms and goroutines, and the goroutine buckets. A process without a
// Go runtime gets the same sections from the core alone (NT_SIGINFO and
// the native stack of the dumping thread).
func buildGo(p *coredump.Process, r *Report, opts Options, facts *diagnose.Facts) {
	defer func() {
		// Target memory is hostile: a reader's bug must cost a section,
		// never the report.
		if e := recover(); e != nil {
			facts.Note("internal error reading the Go runtime: %v", e)
		}
	}()
	for _, n := range buildGoNotes(p, r, opts) {
		facts.Note("%s", n)
	}
}

func buildGoNotes(p *coredump.Process, r *Report, opts Options) []string {
	rt, err := goruntime.Load(p)
	if err != nil {
		if p.Exe != nil && !p.Exe.Status.Usable() {
			// --force with a binary that is not the program: the
			// warning already says nothing is read from it.
			return buildNative(p, r, opts)
		}
		if !errors.Is(err, goruntime.ErrNoRuntime) {
			return append(buildNative(p, r, opts), fmt.Sprintf("Go runtime unreadable: %v", err))
		}
		return buildNative(p, r, opts)
	}
	notes := append([]string(nil), rt.Notes...)
	if !p.ForcedMismatch {
		// The binary's own build info; with a forced binary it is that
		// binary's version, not the process's.
		r.Process.GoVersion = rt.Binary.Version.String()
	}
	if rt.BuildVersion != "" {
		r.Process.GoVersion = rt.BuildVersion
	}
	if len(rt.Args) > len(r.Process.Args) || p.ArgsTruncated && len(rt.Args) > 0 {
		r.Process.Args = rt.Args
	}
	c, err := rt.Crash()
	if err != nil {
		notes = append(notes, fmt.Sprintf("crash site: %v", err))
	}
	if c != nil {
		r.Signal = signalOf(&c.Fault, c.Reraised)
		r.Crash = crashOf(rt, c, opts)
	}
	for _, t := range rt.Threads() {
		th := threadOf(rt, t, opts)
		mergeThread(r, th)
	}
	r.Goroutines = goroutinesOf(rt, opts)
	return notes
}

func signalOf(f *goruntime.Fault, reraised *coredump.SigInfo) *Signal {
	s := &Signal{Name: f.Signo.String(), Number: int(f.Signo), Code: f.CodeName(), CodeNumber: f.Code,
		Function: f.Func, Source: string(f.Source)}
	if f.Source == goruntime.SourcePRStatus {
		// pr_cursig is all NT_PRSTATUS says: no si_code, so no
		// SI_USER or SI_KERNEL to claim.
		s.Code, s.CodeNumber = "", 0
	}
	if f.HasAddr() {
		a := Addr(f.Addr)
		s.Addr = &a
	}
	if f.PC != 0 {
		pc := Addr(f.PC)
		s.PC = &pc
	}
	if f.Sent() {
		s.SenderPID = int(f.PID)
	}
	if reraised != nil {
		s.Reraised = &ReraisedSignal{Name: reraised.Signo.String(), Code: reraised.CodeName()}
	}
	return s
}

func crashOf(rt *goruntime.Runtime, c *goruntime.Crash, opts Options) *Crash {
	out := &Crash{TID: c.Thread.TID, InCgo: c.InCgo, Frames: []Frame{}}
	if c.M != nil {
		id := c.M.ID
		out.M = &id
	}
	if c.G != nil {
		out.Goroutine = c.G.ID
	}
	for i, f := range c.Frames {
		fr := frameOf(&f)
		fr.Plumbing = fr.Plumbing || i < c.Start
		if (fr.Plumbing || f.Wrapper) && !opts.All {
			continue
		}
		out.Frames = append(out.Frames, fr)
	}
	if sf := c.Fault.Frame; sf != nil {
		out.Registers = map[string]Addr{}
		for k, v := range sf.Named() {
			out.Registers[k] = Addr(v)
		}
	}
	return out
}

func frameOf(f *goruntime.Frame) Frame {
	name := f.Func
	if name == "" && f.Module != "" {
		name = fmt.Sprintf("%s+%#x", f.Module, f.ModuleOffset)
	}
	return Frame{Function: name, File: f.File, Line: f.Line, PC: Addr(f.PC), Module: f.Module,
		Kind: f.Kind.String(), Inlined: f.Inlined, Plumbing: f.Plumbing, TailCall: f.TailCall}
}

func framesOf(fs []goruntime.Frame, opts Options, limit int) []Frame {
	out := []Frame{}
	for i := range fs {
		if !opts.All && (fs[i].Plumbing || fs[i].Wrapper) {
			continue
		}
		if !opts.All && limit > 0 && len(out) == limit {
			break
		}
		out = append(out, frameOf(&fs[i]))
	}
	return out
}

func threadOf(rt *goruntime.Runtime, t *goruntime.Thread, opts Options) Thread {
	th := Thread{TID: t.TID, TP: Addr(t.TP), State: t.State.String(), Crashing: t.Crashing, Notes: t.Notes,
		PC: Addr(t.Core.Regs.PC())}
	if t.M != nil {
		id := t.M.ID
		th.M = &id
	}
	if t.Goroutine != nil {
		th.Goroutine = t.Goroutine.ID
	}
	pre := t.PreSignalFrames()
	if len(pre) > 0 {
		th.Function, th.PC = t.Function(), Addr(pre[0].PC)
	}
	if t.Stack.Note != "" {
		th.Notes = append(th.Notes, t.Stack.Note)
	}
	if opts.All {
		th.Frames = framesOf(t.Stack.Frames, opts, 0)
	} else if t.State == goruntime.StateInCgo || t.State == goruntime.StateNonGo {
		th.Frames = framesOf(pre, opts, defaultBucketFrames)
	}
	if t.Stack.Err != nil && !errors.Is(t.Stack.Err, goruntime.ErrStackTruncated) {
		th.Notes = append(th.Notes, "stack: "+t.Stack.Err.Error())
	}
	return th
}

// mergeThread fills the report's entry for th.TID, keeping what other
// layers set (errno).
func mergeThread(r *Report, th Thread) {
	for i := range r.Threads {
		if r.Threads[i].TID == th.TID {
			old := r.Threads[i]
			th.Errno = old.Errno
			th.Notes = append(old.Notes, th.Notes...)
			r.Threads[i] = th
			return
		}
	}
	r.Threads = append(r.Threads, th)
}

func goroutinesOf(rt *goruntime.Runtime, opts Options) *Goroutines {
	g := &Goroutines{Total: len(rt.Gs), ByState: map[string]int{}, Buckets: []Bucket{}}
	for _, x := range rt.Gs {
		g.ByState[x.Header()]++
	}
	for i, b := range rt.Buckets(0) {
		if !opts.All && i == defaultBuckets {
			break
		}
		rb := Bucket{Count: len(b.Goroutines), State: b.Status, WaitReason: b.WaitReason, Crashing: b.Crashing, Locked: b.Locked,
			Frames: framesOf(b.Frames, opts, defaultBucketFrames), IDs: b.IDs()}
		if b.MaxWaitNanos >= 60e9 {
			rb.WaitMinutes = int(b.MaxWaitNanos / 60e9)
		}
		if b.CreatedBy != nil {
			cb := frameOf(b.CreatedBy)
			rb.CreatedBy = &cb
		}
		if !opts.All && len(rb.IDs) > defaultBucketIDs {
			rb.IDs = rb.IDs[:defaultBucketIDs]
		}
		g.Buckets = append(g.Buckets, rb)
	}
	return g
}

// buildNative reports a process without a Go runtime: the signal from
// NT_SIGINFO, the dumping thread's native stack, every thread's top frame.
func buildNative(p *coredump.Process, r *Report, opts Options) []string {
	var notes []string
	if len(p.Threads) == 0 {
		return nil
	}
	first := p.Threads[0]
	if si := p.Signal; si != nil {
		f := goruntime.Fault{SigInfo: *si, PC: first.Regs.PC(), Source: goruntime.SourceNote}
		r.Signal = signalOf(&f, nil)
	} else if first.CurSig != 0 {
		f := goruntime.Fault{SigInfo: coredump.SigInfo{Signo: first.CurSig}, PC: first.Regs.PC(), Source: goruntime.SourcePRStatus}
		r.Signal = signalOf(&f, nil)
	}
	stacks := map[int]goruntime.Stack{}
	for _, t := range p.Threads {
		stacks[t.TID] = goruntime.NativeStack(p, t, 0)
	}
	st := stacks[first.TID]
	start := 0
	if f, i := goruntime.SignalFault(p, st.Frames); f != nil {
		// A signal handler ran (a Go binary whose runtime could not be
		// read, or a C program's own handler): its frame has the fault.
		var note *coredump.SigInfo
		if si := p.Signal; si != nil && (si.Signo != f.Signo || si.Code != f.Code) {
			note = si
		}
		r.Signal = signalOf(f, note)
		start = i + 1
	} else if r.Signal != nil && len(st.Frames) > 0 {
		r.Signal.Function = st.Function()
	}
	r.Crash = &Crash{TID: first.TID, Frames: []Frame{}}
	for i := range st.Frames {
		fr := frameOf(&st.Frames[i])
		fr.Plumbing = fr.Plumbing || i < start
		if fr.Plumbing && !opts.All {
			continue
		}
		r.Crash.Frames = append(r.Crash.Frames, fr)
	}
	untrusted := p.Exe != nil && !p.Exe.Status.Usable()
	if st.Err != nil && !errors.Is(st.Err, goruntime.ErrStackTruncated) && !untrusted {
		notes = append(notes, fmt.Sprintf("stack of thread %d: %v", first.TID, st.Err))
	}
	// A Go binary whose runtime could not be read: its threads are Go's,
	// but what they were doing is unknown.
	state := goruntime.StateNonGo
	if _, err := goruntime.ReadFuncTable(p); err == nil || untrusted {
		state = goruntime.StateUnknown
	}
	for i, t := range p.Threads {
		st := stacks[t.TID]
		th := Thread{TID: t.TID, TP: Addr(t.TP()), PC: Addr(t.Regs.PC()), State: state.String(),
			Crashing: i == 0 && !p.Live()}
		pre := goruntime.Stack{Frames: st.Frames[goruntime.PreSignal(st.Frames):]}
		th.Function = pre.Function()
		if len(pre.Frames) > 0 {
			th.PC = Addr(pre.Frames[0].PC)
		}
		th.Frames = framesOf(st.Frames, opts, defaultBucketFrames)
		mergeThread(r, th)
	}
	return notes
}
