package libc

import (
	"fmt"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

// Fault is the signal that started the crash, as the machine stacks show
// it: the kernel signal frame a handler received (the Go runtime's handler
// re-raises SIGABRT afterwards, so the core's own NT_SIGINFO says SIGABRT),
// or, for a process that died without running a handler, the core's
// NT_SIGINFO and the first thread's registers.
type Fault struct {
	TID  int
	Info coredump.SigInfo
	PC   uint64
	SP   uint64
	// Frames are the interrupted code's frames, innermost first.
	Frames []Frame
	// Source says where the signal was read.
	Source string
	// SignalFrame is the kernel's rt_sigframe, nil for NT_SIGINFO.
	SignalFrame *coredump.SignalFrame
}

// Fault finds the original signal of the crash: a synchronous fault
// (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP) in a signal frame on any
// thread first, then a SIGABRT that C code raised (abort) and a handler
// caught, then the core's NT_SIGINFO unless it is the Go runtime's own
// re-raise. Signals the runtime sends itself (its SIGQUIT relay, its
// re-raised SIGABRT) are never the answer. It returns nil when no thread
// holds a signal (a live process).
func (r *Runtime) Fault() *Fault {
	if f, decided := r.goFault(); decided {
		return f
	}
	var best *Fault
	for _, t := range r.Proc.Threads {
		frames := r.Stack(t.TID)
		for i, f := range frames {
			sf := f.Signal
			if sf == nil {
				continue
			}
			interrupted := frames[i+1:]
			ok := sf.Info.Synchronous() ||
				(sf.Info.Signo == coredump.SIGABRT && len(interrupted) > 0 && !isGoFrame(interrupted[0]) && !r.goRuntimeRaise(interrupted))
			if !ok {
				continue // the runtime's own signal: look further out
			}
			if best == nil || sf.Info.Synchronous() && !best.Info.Synchronous() {
				best = &Fault{TID: t.TID, Info: sf.Info, PC: sf.PC(), SP: sf.SP(), Frames: interrupted, SignalFrame: sf,
					Source: fmt.Sprintf("kernel signal frame at %#x on thread %d's stack", sf.Addr, t.TID)}
			}
			break // the innermost accepted signal frame is the thread's latest
		}
	}
	if best != nil && best.Info.Synchronous() {
		return best
	}
	if si := r.Proc.Signal; si != nil && len(r.Proc.Threads) > 0 && best == nil {
		t := r.Proc.Threads[0]
		frames := r.Stack(t.TID)
		if !r.goRuntimeRaise(frames) {
			return &Fault{TID: t.TID, Info: *si, PC: t.Regs.PC(), SP: t.Regs.SP(), Frames: frames,
				Source: fmt.Sprintf("the core's NT_SIGINFO and thread %d's registers", t.TID)}
		}
	}
	return best
}

// goFault takes the Go runtime layer's verdict on which signal started
// the crash of a Go process (goruntime.Crash: it knows the Ms, their
// signal stacks and the runtime's own re-raises), and unwinds the C frames
// of the interrupted context from that signal frame's registers. decided
// is false when there is no Go runtime view, and the search above runs.
func (r *Runtime) goFault() (f *Fault, decided bool) {
	gr, err := goruntime.Load(r.Proc)
	if err != nil {
		return nil, false
	}
	c, err := gr.Crash()
	if err != nil || c.Thread == nil || c.Kind == goruntime.CrashNoGo {
		return nil, false
	}
	sf := c.Fault.Frame
	if c.Kind != goruntime.CrashFault || sf == nil || c.Fault.Source == goruntime.SourceGSig {
		// A Go panic or throw, a signal from outside, a fault in Go
		// code: no C frames to explain.
		return nil, true
	}
	return &Fault{TID: c.Thread.TID, Info: sf.Info, PC: sf.PC(), SP: sf.SP(), Frames: r.unwindFrom(sf.DwarfRegs(), "signal frame"),
		SignalFrame: sf, Source: fmt.Sprintf("kernel signal frame at %#x on thread %d's stack (%s)", sf.Addr, c.Thread.TID, c.Fault.Source)}, true
}

// goRuntimeRaise reports whether frames (innermost first) are the Go
// runtime raising a signal itself (runtime.raise / raiseproc from
// dieFromSignal, crash or the SIGQUIT relay): such a signal is the
// runtime's re-raise, not the original one.
func (r *Runtime) goRuntimeRaise(frames []Frame) bool {
	for i, f := range frames {
		if i > 3 {
			break
		}
		switch strings.TrimSuffix(f.Func, ".abi0") {
		case "runtime.raise", "runtime.raiseproc", "runtime.tgkill", "runtime.dieFromSignal", "runtime.crash":
			return true
		}
	}
	return false
}

// CFrames returns the fault's frames up to the first frame of Go code or
// of the Go runtime's cgo glue: the C frames of the crash.
func (f *Fault) CFrames() []Frame {
	var out []Frame
	for _, fr := range f.Frames {
		if isGoFrame(fr) {
			break
		}
		out = append(out, fr)
	}
	return out
}

// isGoFrame reports whether a frame is Go code or the runtime's cgo glue
// (_cgo_ wrappers, crosscall), which ends the C part of a stack. Go code
// lives in the executable and its symbols are package-qualified; C
// compilers' clones (foo.part.0, foo.cold) are not Go.
func isGoFrame(f Frame) bool {
	n := f.Func
	if f.Image == nil || !f.Image.IsExe || n == "" {
		return false
	}
	if strings.HasPrefix(n, "_cgo_") || strings.HasPrefix(n, "x_cgo_") || strings.HasPrefix(n, "crosscall") {
		return true
	}
	if !strings.Contains(n, ".") {
		return false
	}
	for _, clone := range []string{".part.", ".cold", ".isra.", ".constprop.", ".lto_priv."} {
		if strings.Contains(n, clone) {
			return false
		}
	}
	return true
}
