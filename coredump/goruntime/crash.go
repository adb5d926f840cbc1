package goruntime

import (
	"errors"
	"fmt"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
)

// FaultSource says where the facts about the original signal were read.
type FaultSource string

const (
	// SourceSigframe: the kernel's rt_sigframe (siginfo and ucontext) the
	// signal handler received, found by unwinding the crashing thread.
	SourceSigframe FaultSource = "sigframe"
	// SourceSignalStack: a kernel rt_sigframe found by scanning the
	// crashing M's signal stack (uc_stack.ss_sp == gsignal.stack.lo).
	SourceSignalStack FaultSource = "signal-stack"
	// SourceGSig: the fields the runtime's handler stored in the
	// goroutine before turning the fault into a panic (g.sig, g.sigcode0,
	// g.sigcode1, g.sigpc).
	SourceGSig FaultSource = "g.sig"
	// SourceNote: the core's NT_SIGINFO note.
	SourceNote FaultSource = "NT_SIGINFO"
	// SourcePRStatus: the crashing thread's NT_PRSTATUS (no NT_SIGINFO).
	SourcePRStatus FaultSource = "NT_PRSTATUS"
)

// Fault is the signal that really ended the process.
type Fault struct {
	// SigInfo is what the kernel told of the signal (si_addr when
	// HasAddr, the sender's PID and UID when Sent); only si_signo for
	// SourcePRStatus.
	coredump.SigInfo
	// PC is the instruction that faulted (or raised the signal), Func its
	// function.
	PC     uint64
	Func   string
	Source FaultSource
	// Frame is the kernel signal frame the facts come from, if any: the
	// registers at the fault.
	Frame *coredump.SignalFrame
}

// CrashKind classifies how the process died.
type CrashKind uint8

const (
	CrashUnknown  CrashKind = iota
	CrashFault              // a fault (SIGSEGV, SIGBUS, ...) or a signal raised by C code (abort)
	CrashPanic              // an unrecovered Go panic
	CrashThrow              // a fatal error of the runtime (throw, fatal)
	CrashExternal           // a signal sent by another process (a requested dump)
	CrashNoGo               // the process has no Go runtime crash path (killed directly)
)

var crashKindNames = [...]string{"unknown", "fault", "panic", "throw", "external", "signal"}

func (k CrashKind) String() string {
	if int(k) < len(crashKindNames) {
		return crashKindNames[k]
	}
	return fmt.Sprintf("CrashKind(%d)", uint8(k))
}

// Crash is the crash site: who crashed, with what, and the stack from the
// fault outward.
type Crash struct {
	Kind   CrashKind
	Thread *Thread
	M      *M
	// G is the crashing goroutine, nil for a throw on the system stack
	// with no goroutine (deadlock) or a thread unknown to the runtime.
	G *G
	// InCgo reports a fault in C code called through cgo.
	InCgo bool
	Fault Fault
	// Reraised is the core's NT_SIGINFO when it differs from Fault: the
	// runtime re-raised SIGABRT (or relayed SIGQUIT) to dump core.
	Reraised *coredump.SigInfo
	// Frames is the crashing thread's stack; the frames inner to the
	// fault, panic or throw are marked Plumbing. Start is the index of the
	// first frame of the story (the faulting or panicking frame).
	Frames []Frame
	Start  int
	// Panics is the crashing goroutine's panic chain, outermost first.
	Panics []*Panic
	// Fatal is the runtime's fatal error text ("concurrent map writes").
	Fatal string
	// FatalFrame is the frame that called throw or fatal.
	FatalFrame *Frame
	// AlsoDying are other threads whose M was dying at the same time (two
	// goroutines hitting the same fatal error): they wait for this one.
	AlsoDying []*Thread
}

// Crash works out the crash site (computed once).
func (r *Runtime) Crash() (*Crash, error) {
	r.crashOnce.Do(func() { r.crash, r.crashErr = r.findCrash() })
	return r.crash, r.crashErr
}

func (r *Runtime) findCrash() (*Crash, error) {
	var t *Thread
	for _, th := range r.Threads() {
		if th.Crashing {
			t = th
		}
	}
	if t == nil {
		return nil, errors.New("no thread in the core")
	}
	c := &Crash{Thread: t, M: t.M, Frames: append([]Frame(nil), t.Stack.Frames...), AlsoDying: r.alsoDying}
	if t.M != nil {
		c.G = t.M.CurG()
		if c.G == nil && t.M.CaughtSig != 0 {
			if g := r.gByAddr[t.M.CaughtSig]; g != nil && g.Role == RoleGoroutine {
				c.G = g
			}
		}
	}
	note := r.Proc.Signal
	if sf, i := r.originalSigframe(t); sf != nil {
		c.Fault = r.faultFromSigframe(sf, SourceSigframe)
		c.Start = storyStart(c.Frames, i+1)
	} else if g := c.G; g != nil && g.Sig != 0 && sigpanicIndex(c.Frames, g) >= 0 {
		c.Fault = r.faultFromG(g)
		c.Start = sigpanicIndex(c.Frames, g) + 1
		if pc := c.Frames[c.Start].PC; pc != g.SigPC {
			// sigpanic's return address is the faulting pc; g.sigpc
			// should be the same instruction.
			r.note("goroutine %d: g.sigpc %#x differs from the pc sigpanic returns to, %#x", g.ID, g.SigPC, pc)
		}
		if s := r.scanSignalStack(t, g.SigPC); s != nil {
			// The kernel's frame of that very fault survived on the
			// signal stack: it has the registers.
			c.Fault.Frame = s
		}
	} else if s := r.scanSignalStack(t, 0); s != nil {
		c.Fault = r.faultFromSigframe(s, SourceSignalStack)
		c.Start = storyStart(c.Frames, t.Top)
	}
	r.readPanics(c)
	r.readFatal(c)
	if c.Fault.Source == "" {
		switch {
		case note != nil:
			c.Fault = Fault{SigInfo: *note, Source: SourceNote}
		default:
			c.Fault = Fault{SigInfo: coredump.SigInfo{Signo: t.Core.CurSig}, Source: SourcePRStatus}
		}
		c.Fault.PC = t.Core.Regs.PC()
		c.Fault.Func = r.funcName(c.Fault.PC, true)
		c.Start = storyStart(c.Frames, t.Top)
	}
	if note != nil && (note.Signo != c.Fault.Signo || note.Code != c.Fault.Code || c.Fault.Source != SourceNote) &&
		c.Fault.Source != SourceNote {
		n := *note
		c.Reraised = &n
	}
	switch {
	case c.Fault.Sent() && c.Fault.PID != 0 && int(c.Fault.PID) != r.Proc.PID && c.Fault.Source != SourceGSig:
		c.Kind = CrashExternal
	case c.Fault.Source == SourceSigframe || c.Fault.Source == SourceSignalStack || c.Fault.Source == SourceGSig:
		c.Kind = CrashFault
	case len(c.Panics) > 0:
		c.Kind = CrashPanic
	case c.Fatal != "":
		c.Kind = CrashThrow
	default:
		c.Kind = CrashNoGo
	}
	if c.Kind == CrashFault && c.Fault.Source != SourceGSig && t.M != nil {
		c.InCgo = t.M.InCgo && c.Start < len(c.Frames) && c.Frames[c.Start].Kind == FrameC
		if t.M.IsExtra && !c.InCgo && c.Start < len(c.Frames) && c.Frames[c.Start].Kind == FrameC {
			// A C thread the runtime lent an extra M to handle the
			// signal: its goroutine is a placeholder, not the crash.
			c.G = nil
		}
	}
	if c.Start > len(c.Frames) {
		c.Start = len(c.Frames)
	}
	for i := 0; i < c.Start; i++ {
		c.Frames[i].Plumbing = true
	}
	return c, nil
}

// originalSigframe returns the kernel signal frame of the first signal
// the crashing thread took, unless that signal is the runtime's own
// re-raise (crash → dieFromSignal → raise(SIGABRT)) or SIGQUIT relay. It
// also returns the frame's index in the thread's stack.
func (r *Runtime) originalSigframe(t *Thread) (*coredump.SignalFrame, int) {
	last := -1
	for i, f := range t.Stack.Frames {
		if f.Kind == FrameSignal && f.Signal != nil {
			last = i
		}
	}
	if last < 0 {
		return nil, -1
	}
	sf := t.Stack.Frames[last].Signal
	if r.internalSignal(sf, t.Stack.Frames[last+1:]) {
		return nil, -1
	}
	return sf, last
}

// internalSignal reports a signal the runtime sent itself while dying:
// SIGABRT raised by crash/dieFromSignal, or the SIGQUIT it relays to
// every M to collect their stacks.
func (r *Runtime) internalSignal(sf *coredump.SignalFrame, interrupted []Frame) bool {
	info := sf.Info
	if info.Synchronous() {
		return false
	}
	self := int(info.PID) == r.Proc.PID || info.PID == 0
	if !self {
		return false
	}
	if info.Signo == coredump.SIGQUIT {
		return true
	}
	for _, f := range interrupted {
		switch f.Func {
		case "runtime.crash", "runtime.dieFromSignal", "runtime.raisebadsignal":
			return true
		}
		if !f.Plumbing {
			break
		}
	}
	return false
}

// scanSignalStack looks for a kernel signal frame on the crashing M's
// signal stack: the kernel writes uc_stack (the sigaltstack in force),
// which equals gsignal's stack bounds. With pc set, only the frame of the
// fault at pc is wanted; otherwise a synchronous fault, else a signal
// another process sent;
// frames below the thread's stack pointer are stale and skipped when the
// thread is on its signal stack.
func (r *Runtime) scanSignalStack(t *Thread, pc uint64) *coredump.SignalFrame {
	if t.M == nil || t.M.Gsignal == nil {
		return nil
	}
	gs := t.M.Gsignal
	lo, hi := gs.StackLo, gs.StackHi
	if hi <= lo || hi-lo > 1<<20 {
		return nil
	}
	buf := make([]byte, hi-lo)
	if _, err := r.Proc.ReadMemory(buf, lo); err != nil {
		return nil
	}
	sp := t.Core.Regs.SP()
	onSignalStack := sp >= lo && sp < hi
	var best *coredump.SignalFrame
	arch := r.Proc.Arch
	size := uint64(coredump.SignalFrameSize(arch))
	for off := uint64(0); off+size <= uint64(len(buf)); off += 8 {
		ss, _ := coredump.SignalFrameStack(arch, buf[off:])
		if ss.SP != lo || ss.Size != hi-lo {
			continue
		}
		if onSignalStack && lo+off < sp {
			continue
		}
		sf, err := coredump.DecodeSignalFrame(arch, lo+off, buf[off:off+size])
		if err != nil {
			continue
		}
		if pc != 0 {
			if sf.PC() == pc {
				return sf
			}
			continue
		}
		if sf.Info.Synchronous() {
			return sf
		}
		if best == nil && sf.Info.Sent() && sf.Info.PID != 0 && int(sf.Info.PID) != r.Proc.PID {
			best = sf // sent by another process
		}
	}
	return best
}

func (r *Runtime) faultFromSigframe(sf *coredump.SignalFrame, src FaultSource) Fault {
	f := Fault{SigInfo: sf.Info, PC: sf.PC(), Source: src, Frame: sf}
	f.Func = r.funcName(f.PC, true)
	return f
}

// faultFromG reads the fault the runtime recorded in the goroutine before
// injecting sigpanic.
func (r *Runtime) faultFromG(g *G) Fault {
	f := Fault{SigInfo: coredump.SigInfo{Signo: coredump.Signal(g.Sig), Code: int32(g.SigCode0)}, PC: g.SigPC, Source: SourceGSig}
	if f.HasAddr() {
		f.Addr = g.SigCode1
	}
	f.Func = r.funcName(f.PC, true)
	return f
}

// sigpanicIndex returns the index of the frame that faulted in g (the one
// runtime.sigpanic was injected above), -1 if g's stack holds no
// sigpanic.
func sigpanicIndex(frames []Frame, g *G) int {
	for i, f := range frames {
		if f.Func == "runtime.sigpanic" && f.G == g && i+1 < len(frames) {
			return i
		}
	}
	return -1
}

// funcName names the code at pc: the innermost inlined Go function, or
// the C symbol (with its module outside the executable).
func (r *Runtime) funcName(pc uint64, exact bool) string {
	if pi := r.pcinfo(pc, exact); pi.ok && len(pi.logical) > 0 {
		return pi.logical[0].Name
	}
	fr := fillCFrame(r.Proc, r.cLines(), Frame{PC: pc, Trap: exact})
	switch {
	case fr.Module != "" && fr.Func != "":
		return fr.Module + "`" + fr.Func
	case fr.Module != "":
		if im := r.Proc.FindImage(pc); im != nil {
			return fmt.Sprintf("%s+%#x", fr.Module, pc-im.Base)
		}
	}
	return fr.Func
}

// storyStart returns the index of the first frame of what the program was
// doing, at or after from: past the crash machinery, and past the
// runtime's own frames between a panic or throw and the code that caused
// it (runtime.gopanic ← runtime.panicBounds64 ← main.pick starts at
// main.pick). When only runtime frames remain (a deadlock detected by
// the scheduler), the story starts right after throw.
func storyStart(frames []Frame, from int) int {
	i := from
	for i < len(frames) && (frames[i].Plumbing || frames[i].Kind == FrameSignal) {
		i++
	}
	// Unnamed frames of a library between plumbing frames (libc's local
	// functions around raise and abort) are plumbing too.
	for j := i; j < len(frames) && j < i+8; j++ {
		f := frames[j]
		if f.Kind != FrameC || f.Module == "" || (f.Func != "" && !f.Plumbing) {
			break
		}
		if f.Plumbing {
			i = j + 1
		}
	}
	for i < len(frames) && frames[i].Plumbing {
		i++
	}
	trigger := -1
	for j := from; j < len(frames); j++ {
		switch frames[j].Func {
		case "runtime.gopanic", "runtime.throw", "runtime.fatal", "runtime.sigpanic", "runtime.fatalthrow", "runtime.fatalpanic":
			trigger = j
		}
		if trigger >= 0 && !isRuntimeFunc(frames[j].Func) {
			break
		}
	}
	if trigger < 0 {
		return min(i, len(frames))
	}
	for k := trigger + 1; k < len(frames); k++ {
		if !isRuntimeFunc(frames[k].Func) {
			return k
		}
	}
	for k := trigger + 1; k < len(frames); k++ {
		if !frames[k].Plumbing {
			return k
		}
	}
	return min(i, len(frames))
}

// isRuntimeFunc reports functions of the runtime and its internal
// packages (maps, atomics), which the story of a panic skips.
func isRuntimeFunc(name string) bool {
	return strings.HasPrefix(name, "runtime.") || strings.HasPrefix(name, "internal/runtime/") ||
		strings.HasPrefix(name, "runtime/internal/")
}
