package memory

import (
	"fmt"
	"slices"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/coredump/insn"
	"github.com/coreexplain/coreexplain/coredump/libc"
)

// Fault is the synchronous fault a process died of: what the kernel told
// the signal handler, and the registers at the faulting instruction when
// they survive. It is the address-level reading of the crash views of
// packages goruntime (Runtime.Crash) and libc (Runtime.Fault).
type Fault struct {
	// SigInfo is what the kernel told the handler; Addr is si_addr: the
	// faulting data address for SIGSEGV/SIGBUS, the faulting instruction
	// for SIGILL/SIGFPE.
	coredump.SigInfo
	PC uint64
	// Regs are the registers at the fault; nil when they are lost (the
	// runtime turned a fault in Go code into a panic and the kernel's
	// frame did not survive on the signal stack).
	Regs *coredump.Registers
	// Frame is the kernel's signal frame of the fault when the Go
	// runtime's view found it: the CPU's exception number and error code
	// (Frame.HasTrap).
	Frame *coredump.SignalFrame
	TID   int
	// Goroutine is the goroutine that faulted, or whose cgo call was
	// running on the faulting thread (0 for a thread without one).
	Goroutine int64
	// InGo: the fault was in Go code and became a panic (sigpanic).
	InGo bool
	// Source says where the facts were read.
	Source string
}

// SP is the stack pointer at the fault, 0 when unknown.
func (f *Fault) SP() uint64 {
	if f.Regs == nil {
		return 0
	}
	return f.Regs.SP()
}

// Page-fault error code bits (x86 #PF).
const (
	pfWrite     = 1 << 1
	pfInsnFetch = 1 << 4
	trapPF      = 14
)

// Access is what the faulting access did, from the page-fault error code
// when the kernel recorded it.
func (f *Fault) Access() (insn.Access, bool) {
	sf := f.Frame
	if sf == nil || !sf.HasTrap || sf.Trapno != trapPF {
		return insn.AccessUnknown, false
	}
	switch {
	case sf.ErrCode&pfInsnFetch != 0:
		return insn.AccessExecute, true
	case sf.ErrCode&pfWrite != 0:
		return insn.AccessWrite, true
	}
	return insn.AccessRead, true
}

// CrashFault returns the synchronous fault the process died of, nil when
// it did not die of one (a panic, a fatal error, a signal sent from
// outside). A Go process's answer is the Go runtime's crash site
// (goruntime.Runtime.Crash: the sighandler's kernel frame, or what the
// runtime recorded in the goroutine); a process without the Go runtime's
// crash path gets the C runtime's (libc.Runtime.Fault).
func (s *Space) CrashFault() *Fault {
	s.faultOnce.Do(func() {
		if rt := s.Runtime(); rt != nil {
			if c, err := rt.Crash(); err == nil && c.Kind != goruntime.CrashNoGo {
				s.fault = goFault(s.p, c)
				return
			}
		}
		s.fault = s.cFault()
	})
	return s.fault
}

// goFault adapts the Go runtime's crash site.
func goFault(p *coredump.Process, c *goruntime.Crash) *Fault {
	gf := c.Fault
	if c.Kind != goruntime.CrashFault || c.Thread == nil || !gf.Signo.IsFault() || gf.Sent() {
		return nil
	}
	f := &Fault{SigInfo: gf.SigInfo, PC: gf.PC, TID: c.Thread.TID, InGo: gf.Source == goruntime.SourceGSig}
	if c.G != nil && c.G.Role == goruntime.RoleGoroutine {
		f.Goroutine = c.G.ID
	}
	if sf := gf.Frame; sf != nil {
		f.Regs, f.Frame = withTP(sf.Regs, c.Thread.TP), sf
	}
	switch {
	case gf.Source == goruntime.SourceGSig:
		f.Source = fmt.Sprintf("g.sig, g.sigcode0/1 and g.sigpc of goroutine %d", f.Goroutine)
		if gf.Frame != nil {
			f.Source += fmt.Sprintf("; registers from the kernel signal frame at %#x", gf.Frame.Addr)
		}
	case gf.Frame != nil:
		f.Source = fmt.Sprintf("kernel signal frame at %#x on thread %d (%s)", gf.Frame.Addr, f.TID, gf.Source)
	default:
		f.Source = string(gf.Source)
	}
	return f
}

// withTP returns a copy of a signal frame's registers with the thread's
// pointer, which the frame does not hold.
func withTP(r *coredump.Registers, tp uint64) *coredump.Registers {
	c := &coredump.Registers{Arch: r.Arch, Values: append([]uint64(nil), r.Values...), TP: tp}
	if i := slices.Index(c.Names(), "fs_base"); i >= 0 {
		c.Values[i] = tp
	}
	return c
}

// cFault adapts the C runtime's view of the crash: a kernel signal frame
// a handler received, or the core's NT_SIGINFO with the dumping thread's
// registers.
func (s *Space) cFault() *Fault {
	lr, err := libc.Of(s.p)
	if err != nil {
		return nil
	}
	lf := lr.Fault()
	if lf == nil || !lf.Info.Synchronous() {
		return nil
	}
	f := &Fault{SigInfo: lf.Info, PC: lf.PC, TID: lf.TID, Source: lf.Source}
	t := s.p.Thread(lf.TID)
	switch {
	case lf.SignalFrame == nil && t != nil:
		f.Regs = t.Regs
	case lf.SignalFrame != nil && len(lf.Frames) > 0 && lf.Frames[0].Regs() != nil && t != nil:
		f.Regs = lf.Frames[0].Regs().Registers(t.TP())
	}
	return f
}
