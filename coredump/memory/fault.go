package memory

import (
	"fmt"
	"slices"
	"sort"

	"github.com/coreexplain/coreexplain/coredump"
)

// Fault is the synchronous fault a process died of: what the kernel told
// the signal handler, and the registers at the faulting instruction when
// they survive.
type Fault struct {
	Signal coredump.Signal
	Code   int32
	// Addr is si_addr: the faulting data address for SIGSEGV/SIGBUS, the
	// faulting instruction for SIGILL/SIGFPE.
	Addr uint64
	PC   uint64
	// Regs are the registers at the fault; nil when the runtime rewrote
	// them (a fault in Go code turns into a panic).
	Regs *coredump.Registers
	// Trapno and ErrCode are the CPU's exception number and page-fault
	// error code, from the kernel's signal frame (HasTrap).
	Trapno, ErrCode uint64
	HasTrap         bool
	TID             int
	// Goroutine is the goroutine that faulted in Go code (0 for C code).
	Goroutine int64
	// InGo: the fault was in Go code and became a panic (sigpanic).
	InGo bool
	// Source says where the facts were read.
	Source string
}

// CodeName names si_code.
func (f *Fault) CodeName() string { return coredump.CodeName(f.Signal, f.Code) }

// SP is the stack pointer at the fault, 0 when unknown.
func (f *Fault) SP() uint64 {
	if f.Regs == nil {
		return 0
	}
	return f.Regs.SP()
}

// Page-fault error code bits (x86 #PF).
const (
	pfProtection = 1 << 0
	pfWrite      = 1 << 1
	pfInsnFetch  = 1 << 4
)

// Access is what the faulting access did, from the page-fault error code
// when the kernel recorded it.
func (f *Fault) Access() (Access, bool) {
	if !f.HasTrap || f.Trapno != 14 {
		return AccessUnknown, false
	}
	switch {
	case f.ErrCode&pfInsnFetch != 0:
		return AccessExecute, true
	case f.ErrCode&pfWrite != 0:
		return AccessWrite, true
	}
	return AccessRead, true
}

// CrashFault finds the fault the process died of.
//
// It reads, in order: a synchronous kernel signal frame on a thread's Go
// signal stack (a fault in C or runtime code: the runtime re-raised
// SIGABRT afterwards); the fault the runtime recorded in the faulting
// goroutine (g.sig, g.sigcode0/1, g.sigpc: a fault in Go code); the
// core's NT_SIGINFO with the dumping thread's registers (a program without
// the Go runtime's handler). It returns nil when the process did not die
// of a synchronous fault.
//
// This is the bridge to the crash API of package goruntime: once that
// exists this function only adapts its answer.
func (s *Space) CrashFault() *Fault {
	s.faultOnce.Do(func() { s.fault = s.findFault() })
	return s.fault
}

func (s *Space) findFault() *Fault {
	p := s.p
	s.loadGo()
	if f := s.sigframeFault(); f != nil && !s.inFunc(f.PC, "runtime.sigpanic") {
		return f
	}
	if f := s.goFault(); f != nil {
		return f
	}
	if si := p.Signal; si != nil && si.Synchronous() && len(p.Threads) > 0 {
		t := p.Threads[0]
		return &Fault{Signal: si.Signo, Code: si.Code, Addr: si.Addr, PC: t.Regs.PC(), Regs: t.Regs, TID: t.TID,
			Source: fmt.Sprintf("NT_SIGINFO and thread %d's NT_PRSTATUS", t.TID)}
	}
	return nil
}

func (s *Space) inFunc(pc uint64, name string) bool {
	_, sym, ok := s.p.Symbolize(pc)
	return ok && sym.Name == name
}

// Kernel rt_sigframe layout on x86-64 (arch/x86/include/asm/sigframe.h):
// pretcode, then struct ucontext (uc_flags, uc_link, uc_stack, mcontext,
// 8-byte kernel sigmask), then siginfo.
const (
	sfUCStackSP   = 8 + 16
	sfUCStackSize = 8 + 32
	sfGregs       = 8 + 40
	sfSiginfo     = 312
	sfSize        = sfSiginfo + 128
)

// sigcontext general registers, in their order in uc_mcontext.
var sigcontextRegs = []string{"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
	"rdx", "rax", "rcx", "rsp", "rip", "eflags"}

const (
	scErr    = 19
	scTrapno = 20
	scCR2    = 22
)

// sigframeFault looks for the kernel's signal frame of a synchronous
// signal on the signal stack (sigaltstack) of a thread that is handling a
// signal now: its uc_stack names that very stack, which identifies it.
func (s *Space) sigframeFault() *Fault {
	if s.gv == nil || s.p.Arch != coredump.ArchAMD64 {
		return nil
	}
	for _, t := range s.p.Threads {
		sp := t.Regs.SP()
		for _, g := range s.gv.Stacks {
			if g.Kind != SignalStack || g.TID != t.TID || sp < g.Lo || sp >= g.Hi || g.Hi-g.Lo > 1<<20 {
				continue
			}
			from := sp &^ 7
			buf := make([]byte, g.Hi-from)
			if _, err := s.p.ReadMemory(buf, from); err != nil {
				continue
			}
			var frames []*Fault
			for off := 0; off+sfSize <= len(buf); off += 8 {
				if le.Uint64(buf[off+sfUCStackSP:]) != g.Lo || le.Uint64(buf[off+sfUCStackSize:]) != g.Hi-g.Lo {
					continue
				}
				if f := decodeSigframe(buf[off:off+sfSize], t); f != nil {
					f.Source = fmt.Sprintf("kernel signal frame at %#x on the signal stack of thread %d", from+uint64(off), t.TID)
					frames = append(frames, f)
				}
			}
			// The first signal sits highest; later (nested) ones below it.
			slices.Reverse(frames)
			for _, f := range frames {
				if f.Signal.IsFault() && f.Code > 0 {
					// The goroutine whose cgo call (or runtime code) was
					// running on the thread.
					for _, gs := range s.gv.Stacks {
						if gs.Kind == GoroutineStack && gs.TID == t.TID && !gs.Dead {
							f.Goroutine = gs.Goid
						}
					}
					return f
				}
			}
		}
	}
	return nil
}

func decodeSigframe(b []byte, t *coredump.Thread) *Fault {
	si := b[sfSiginfo:]
	f := &Fault{Signal: coredump.Signal(int32(le.Uint32(si))), Code: int32(le.Uint32(si[8:])), TID: t.TID, HasTrap: true}
	if f.Signal <= 0 || f.Signal > 64 {
		return nil
	}
	if f.Code > 0 {
		f.Addr = le.Uint64(si[16:])
	}
	greg := func(i int) uint64 { return le.Uint64(b[sfGregs+8*i:]) }
	vals := map[string]uint64{}
	for i, n := range sigcontextRegs {
		vals[n] = greg(i)
	}
	f.ErrCode, f.Trapno = greg(scErr), greg(scTrapno)
	regs := &coredump.Registers{Arch: coredump.ArchAMD64, TP: t.TP()}
	names := (&coredump.Registers{Arch: coredump.ArchAMD64}).Names()
	regs.Values = make([]uint64, len(names))
	for i, n := range names {
		if v, ok := vals[n]; ok {
			regs.Values[i] = v
		} else if v, ok := t.Regs.Get(n); ok && (n == "fs_base" || n == "gs_base" || n == "cs" || n == "ss") {
			regs.Values[i] = v
		}
	}
	f.Regs = regs
	f.PC = vals["rip"]
	return f
}

// goFault reads the fault the runtime recorded in the goroutine that took
// it (sighandler stores sig, sigcode0, sigcode1 and sigpc before
// injecting sigpanic).
func (s *Space) goFault() *Fault {
	if s.gv == nil || s.bin == nil {
		return nil
	}
	l := s.bin.Layout
	g, err := l.Struct("runtime.g")
	if err != nil {
		return nil
	}
	off := map[string]int64{}
	for _, n := range []string{"sig", "sigcode0", "sigcode1", "sigpc"} {
		f, err := g.Field(n)
		if err != nil {
			return nil
		}
		off[n] = f.Offset
	}
	// Prefer the goroutine running on the first (dumping) thread.
	cands := append([]goStack(nil), s.gv.Stacks...)
	first := 0
	if len(s.p.Threads) > 0 {
		first = s.p.Threads[0].TID
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].TID == first && cands[j].TID != first })
	for _, c := range cands {
		if c.Kind != GoroutineStack || c.Dead {
			continue
		}
		sig, err := s.p.ReadUint32(c.G + uint64(off["sig"]))
		if err != nil || !coredump.Signal(sig).IsFault() {
			continue
		}
		// A nil dereference panics (g._panic set); an "unexpected fault
		// address" throws without a panic record: both keep g.sig.
		code, _ := s.p.ReadUint64(c.G + uint64(off["sigcode0"]))
		addr, _ := s.p.ReadUint64(c.G + uint64(off["sigcode1"]))
		pc, _ := s.p.ReadUint64(c.G + uint64(off["sigpc"]))
		if pc == 0 {
			continue
		}
		return &Fault{Signal: coredump.Signal(sig), Code: int32(code), Addr: addr, PC: pc, TID: c.TID,
			Goroutine: c.Goid, InGo: true,
			Source: fmt.Sprintf("g.sig, g.sigcode0/1 and g.sigpc of goroutine %d", c.Goid)}
	}
	return nil
}
