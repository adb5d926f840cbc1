package coredump

import (
	"fmt"
	"io"
)

// The kernel's signal frame (struct rt_sigframe): what Linux pushes on the
// stack a signal handler runs on, and what rt_sigreturn restores from. It
// is kernel ABI, the same for every libc and for the Go runtime. Layouts
// as of Linux 6.12; the offsets read here have not moved since the ports
// began (amd64's ss word was __pad0 before Linux 4.6):
//
// amd64, arch/x86/include/asm/sigframe.h, filled by x64_setup_rt_frame in
// arch/x86/kernel/signal.c (signal_64.c in later kernels):
//
//	struct rt_sigframe { char *pretcode; struct ucontext uc; struct siginfo info; }
//
// with struct ucontext from include/uapi/asm-generic/ucontext.h (uc_flags,
// uc_link, uc_stack, uc_mcontext, uc_sigmask: 304 bytes) and uc_mcontext
// the 64-bit struct sigcontext of arch/x86/include/uapi/asm/sigcontext.h.
// The handler is entered with rsp at pretcode, the restorer's address, and
// its ret pops it: the restorer runs with rsp at uc.
//
// arm64, arch/arm64/kernel/signal.c:
//
//	struct rt_sigframe { struct siginfo info; struct ucontext uc; }
//
// with struct ucontext from arch/arm64/include/uapi/asm/ucontext.h
// (uc_flags, uc_link, uc_stack, uc_sigmask, 120 unused bytes for glibc's
// 1024-bit sigset_t, then uc_mcontext aligned to 16) and struct sigcontext
// from arch/arm64/include/uapi/asm/sigcontext.h (fault_address, regs[31],
// sp, pc, pstate). setup_return enters the handler with sp at info and
// the restorer in x30; the handler returns through x30 with sp restored,
// so the restorer runs with sp at info too.
//
// siginfo_t is 128 bytes on both (SI_MAX_SIZE, include/uapi/asm-generic/
// siginfo.h), and stack_t is {ss_sp, ss_flags, ss_size} at 0, 8 and 16
// (include/uapi/asm-generic/signal.h).
const (
	sigInfoSize = 128

	amd64FrameUC       = 8  // pretcode, then the ucontext
	amd64UCStack       = 16 // uc_stack, after uc_flags and uc_link
	amd64UCMcontext    = 40 // uc_mcontext, after the 24-byte uc_stack
	amd64UCSize        = 304
	amd64FrameInfo     = amd64FrameUC + amd64UCSize
	amd64SignalFrameSz = amd64FrameInfo + sigInfoSize

	arm64FrameUC       = sigInfoSize // siginfo, then the ucontext
	arm64UCStack       = 16
	arm64UCMcontext    = 176 // 48 bytes of fields and 120 unused, aligned to 16
	arm64SigcontextLen = 8 + 31*8 + 3*8
	arm64SignalFrameSz = arm64FrameUC + arm64UCMcontext + arm64SigcontextLen
)

// amd64SigcontextRegs gives, for each 8-byte word of the 64-bit struct
// sigcontext up to cr2, the index of the register in Registers (the
// user_regs_struct order), -1 for the words that are no register there:
// r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags, then
// cs/gs/fs/ss packed in one word, err, trapno, oldmask, cr2.
var amd64SigcontextRegs = [...]int{9, 8, 7, 6, 3, 2, 1, 0, 14, 13, 4, 5, 12, 10, 11, 19, 16, 18,
	-1, -1, -1, -1, -1}

const (
	amd64SCSegments  = 18 // u16 cs, gs, fs, ss
	amd64SCErr       = 19
	amd64SCTrapno    = 20
	amd64SCCR2       = 22
	amd64CS, amd64SS = 17, 20 // in Registers
)

// SignalStack is a stack_t: the signal stack (sigaltstack) in force.
type SignalStack struct {
	SP    uint64
	Flags uint32
	Size  uint64
}

// SignalFrame is a decoded kernel rt_sigframe.
type SignalFrame struct {
	// Addr is the address of the rt_sigframe: the stack pointer the
	// handler was entered with. On amd64 it holds pretcode, on arm64 the
	// siginfo. SignalFrameAtRestorer finds it from the restorer's sp.
	Addr uint64
	Info SigInfo
	// Regs are the interrupted registers in the order of NT_PRSTATUS. The
	// frame has no thread pointer (TP and fs_base are 0) and, on amd64,
	// no orig_rax, gs_base, ds, es, fs or gs (0).
	Regs *Registers
	// Stack is uc_stack: the sigaltstack when the signal arrived.
	Stack SignalStack
	// Trapno, ErrCode and CR2 are the CPU's exception number, error code
	// and page-fault address (amd64's sigcontext; HasTrap). FaultAddress
	// is arm64's sigcontext.fault_address (FAR_EL1).
	Trapno, ErrCode, CR2 uint64
	HasTrap              bool
	FaultAddress         uint64
}

// PC and SP are the interrupted instruction and stack pointer.
func (s *SignalFrame) PC() uint64 { return s.Regs.PC() }
func (s *SignalFrame) SP() uint64 { return s.Regs.SP() }

// DwarfRegs are the interrupted registers for unwinding: those the frame
// holds, without the thread-pointer bases it does not.
func (s *SignalFrame) DwarfRegs() *DwarfRegs {
	d := NewDwarfRegs(s.Regs)
	if s.Regs.Arch == ArchAMD64 {
		d.Valid &^= 1<<amd64DwarfNum[amd64FSBase] | 1<<amd64DwarfNum[amd64FSBase+1]
	}
	return d
}

// Named returns the registers struct sigcontext holds, by name: the
// general registers and, on amd64, eflags, trapno, err and cr2.
func (s *SignalFrame) Named() map[string]uint64 {
	r := s.Regs
	m := make(map[string]uint64, 36)
	switch r.Arch {
	case ArchAMD64:
		for _, i := range amd64SigcontextRegs {
			if i >= 0 {
				m[amd64RegNames[i]] = r.Values[i]
			}
		}
		m["trapno"], m["err"], m["cr2"] = s.Trapno, s.ErrCode, s.CR2
	case ArchARM64:
		for i, n := range arm64RegNames {
			m[n] = r.Values[i]
		}
		m["fault_address"] = s.FaultAddress
	}
	return m
}

// SignalFrameSize is the number of bytes DecodeSignalFrame needs: the
// rt_sigframe up to the end of what is decoded.
func SignalFrameSize(a Arch) int {
	if a == ArchARM64 {
		return arm64SignalFrameSz
	}
	return amd64SignalFrameSz
}

// SignalFrameAtRestorer returns the address of the rt_sigframe of a
// restorer (the sigreturn trampoline) that runs with stack pointer sp:
// amd64's handler popped pretcode, arm64's returned through x30.
func SignalFrameAtRestorer(a Arch, sp uint64) uint64 {
	if a == ArchARM64 {
		return sp
	}
	return sp - amd64FrameUC
}

// SignalFrameStack returns uc_stack of the rt_sigframe that b starts
// with, to find frames on a known signal stack cheaply before decoding.
func SignalFrameStack(a Arch, b []byte) (SignalStack, bool) {
	off := amd64FrameUC + amd64UCStack
	if a == ArchARM64 {
		off = arm64FrameUC + arm64UCStack
	}
	if len(b) < off+24 {
		return SignalStack{}, false
	}
	return SignalStack{SP: le.Uint64(b[off:]), Flags: le.Uint32(b[off+8:]), Size: le.Uint64(b[off+16:])}, true
}

// ReadSignalFrame reads and decodes the rt_sigframe at addr.
func ReadSignalFrame(mem io.ReaderAt, a Arch, addr uint64) (*SignalFrame, error) {
	b := make([]byte, SignalFrameSize(a))
	if addr >= 1<<63 {
		return nil, &MemoryError{Addr: addr, Reason: NotMapped}
	}
	if _, err := mem.ReadAt(b, int64(addr)); err != nil {
		return nil, fmt.Errorf("signal frame at %#x: %w", addr, err)
	}
	return DecodeSignalFrame(a, addr, b)
}

// DecodeSignalFrame decodes the rt_sigframe at addr whose bytes b starts
// with (at least SignalFrameSize). It rejects what no kernel writes: a
// signal number outside 1..64 (_NSIG) and a pc of 0 or outside user space.
func DecodeSignalFrame(a Arch, addr uint64, b []byte) (*SignalFrame, error) {
	if len(b) < SignalFrameSize(a) {
		return nil, fmt.Errorf("signal frame at %#x: %d bytes, want %d", addr, len(b), SignalFrameSize(a))
	}
	s := &SignalFrame{Addr: addr, Regs: &Registers{Arch: a}}
	s.Stack, _ = SignalFrameStack(a, b)
	var info []byte
	switch a {
	case ArchAMD64:
		info = b[amd64FrameInfo:]
		mc := b[amd64FrameUC+amd64UCMcontext:]
		s.Regs.Values = make([]uint64, len(amd64RegNames))
		for w, i := range amd64SigcontextRegs {
			if i >= 0 {
				s.Regs.Values[i] = le.Uint64(mc[8*w:])
			}
		}
		seg := mc[8*amd64SCSegments:]
		s.Regs.Values[amd64CS], s.Regs.Values[amd64SS] = uint64(le.Uint16(seg)), uint64(le.Uint16(seg[6:]))
		s.ErrCode, s.Trapno, s.CR2 = le.Uint64(mc[8*amd64SCErr:]), le.Uint64(mc[8*amd64SCTrapno:]), le.Uint64(mc[8*amd64SCCR2:])
		s.HasTrap = true
	case ArchARM64:
		info = b[:sigInfoSize]
		sc := b[arm64FrameUC+arm64UCMcontext:]
		s.FaultAddress = le.Uint64(sc)
		s.Regs.Values = make([]uint64, len(arm64RegNames))
		for i := range s.Regs.Values { // x0..x30, sp, pc, pstate
			s.Regs.Values[i] = le.Uint64(sc[8+8*i:])
		}
	default:
		return nil, fmt.Errorf("signal frame at %#x: unsupported architecture %s", addr, a)
	}
	si, err := decodeSigInfo(info[:sigInfoSize])
	if err != nil {
		return nil, fmt.Errorf("signal frame at %#x: %w", addr, err)
	}
	s.Info = *si
	if s.Info.Signo <= 0 || s.Info.Signo > 64 {
		return nil, fmt.Errorf("no signal frame at %#x: signal number %d", addr, s.Info.Signo)
	}
	if pc := s.PC(); pc == 0 || !userAddress(a, pc) {
		return nil, fmt.Errorf("no signal frame at %#x: pc %#x", addr, pc)
	}
	return s, nil
}

// userAddress reports whether v can be a pc the kernel saved: on amd64
// a canonical address (bits 63..47 all equal; user space is the lower
// half with 4-level paging), on arm64 below 2^52, the largest VA size.
func userAddress(a Arch, v uint64) bool {
	if a == ArchARM64 {
		return v>>52 == 0
	}
	return v>>47 == 0 || v>>47 == 0x1ffff
}
