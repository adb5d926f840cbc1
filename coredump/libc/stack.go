package libc

import (
	"bytes"
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
)

// Frame is one frame of a thread's machine stack, as this package unwinds
// it to find C frames (abort, malloc, free) and the Go runtime's crash
// path. Frames come from call frame information where an image has it,
// through kernel signal frames by their layout, and from frame pointers or
// a stack scan where neither exists (musl's libc.a carries no CFI).
type Frame struct {
	PC  uint64
	SP  uint64
	CFA uint64
	// Image and Func name the code; Func is "" when no symbol covers PC.
	Image  *coredump.Image
	Func   string
	Offset uint64
	// How says how this frame was found from the one before it:
	// "registers" (the innermost), "cfi", "signal frame", "frame
	// pointer", "stack scan".
	How string
	// Signal is set on a signal's restorer frame: the kernel's
	// rt_sigframe of the signal, which interrupted the next frame.
	Signal *coredump.SignalFrame

	regs *coredump.DwarfRegs
}

// Regs returns the registers known in this frame: all of them for the
// innermost frame and a frame a signal interrupted, the callee-saved ones
// CFI restores for the others.
func (f *Frame) Regs() *coredump.DwarfRegs { return f.regs }

// String names the frame: function, module`function for a library, and
// module+offset when no symbol covers the pc (a static function of a
// stripped library).
func (f *Frame) String() string {
	switch {
	case f.Image == nil && f.Func == "":
		return fmt.Sprintf("%#x (not code)", f.PC)
	case f.Func == "":
		return fmt.Sprintf("%s+%#x", f.Image.Name(), f.PC-f.Image.Base)
	case f.Image != nil && !f.Image.IsExe:
		return f.Image.Name() + "`" + f.Func
	}
	return f.Func
}

const (
	maxFrames  = 256
	scanWindow = 4096 // bytes searched for a return address
)

// sigreturn trampolines: mov $15,%rax; syscall (glibc, musl and Go's
// runtime.sigreturn__sigaction), and mov x8,#139; svc #0 on arm64.
var (
	amd64Sigreturn = []byte{0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05}
	arm64Sigreturn = []byte{0x68, 0x11, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4}
)

// Stack unwinds the thread with the given tid, innermost frame first.
func (r *Runtime) Stack(tid int) []Frame {
	if fs, ok := r.unwind[tid]; ok {
		return fs
	}
	t := r.Proc.Thread(tid)
	if t == nil {
		return nil
	}
	fs := r.unwindThread(t)
	r.unwind[tid] = fs
	return fs
}

func (r *Runtime) unwindThread(t *coredump.Thread) []Frame {
	return r.unwindFrom(coredump.NewDwarfRegs(t.Regs), "registers")
}

// unwindFrom unwinds from the registers of a frame whose pc is exact (the
// innermost frame, or a context a signal interrupted).
func (r *Runtime) unwindFrom(regs *coredump.DwarfRegs, how string) []Frame {
	p := r.Proc
	var out []Frame
	w := p.WalkCFI(regs, true, maxFrames)
	for w.Next() {
		regs, exact := w.Regs(), w.Exact()
		pc, sp := regs.PC(), regs.SP()
		f := Frame{PC: pc, SP: sp, How: how, regs: regs}
		look := pc
		if !exact && look > 0 {
			look--
		}
		if im, sym, ok := p.Symbolize(look); ok {
			f.Image, f.Func, f.Offset = im, sym.Name, pc-sym.Addr
		} else {
			f.Image = p.FindImage(pc)
			if name, entry, ok := r.goFunc(f.Image, look); ok {
				f.Func, f.Offset = name, pc-entry
			}
		}
		if sf, caller := r.signalFrame(pc, sp); sf != nil {
			f.Func = "<signal handler called>"
			out = append(out, f)
			if caller == nil {
				break
			}
			out[len(out)-1].Signal = sf
			w.Resume(caller, true)
			how = "signal frame"
			continue
		}
		out = append(out, f)
		if m := p.FindMapping(pc); m == nil || m.Perm&coredump.PermExec == 0 {
			break
		}
		step, err := w.Unwind()
		if err == nil && step.Caller.PC() != 0 {
			out[len(out)-1].CFA = step.CFA
			how = "cfi"
			continue
		}
		if err == nil {
			break // CFI marks the outermost frame
		}
		// Without CFI: a return address whose call instruction targets
		// this very function is the best evidence; then the frame-pointer
		// chain (wrong when this function keeps no frame pointer, as
		// musl's libc.a does not); then any plausible return address.
		var fn uint64
		if _, sym, ok := p.Symbolize(look); ok {
			fn = sym.Addr
		} else if _, entry, ok := r.goFunc(f.Image, look); ok {
			fn = entry
		}
		scanned, verified := r.scanStep(regs, fn)
		if scanned != nil && verified {
			w.Resume(scanned, false)
			how = "stack scan"
			continue
		}
		if caller := r.framePointerStep(regs); caller != nil {
			w.Resume(caller, false)
			how = "frame pointer"
			continue
		}
		if scanned != nil {
			w.Resume(scanned, false)
			how = "stack scan"
			continue
		}
		break
	}
	return out
}

// isSigreturn reports whether pc is a sigreturn trampoline.
func (r *Runtime) isSigreturn(pc uint64) bool {
	m := r.Proc.FindMapping(pc)
	if m == nil || m.Perm&coredump.PermExec == 0 {
		return false
	}
	var code [9]byte
	if _, err := r.Proc.ReadMemory(code[:], pc); err != nil {
		return false
	}
	if r.Arch == coredump.ArchARM64 {
		return bytes.Equal(code[:8], arm64Sigreturn)
	}
	return bytes.Equal(code[:], amd64Sigreturn)
}

// signalFrame recognises a sigreturn trampoline at pc and decodes the
// kernel's signal frame of the restorer running with stack pointer sp,
// returning the interrupted registers.
func (r *Runtime) signalFrame(pc, sp uint64) (*coredump.SignalFrame, *coredump.DwarfRegs) {
	var code [9]byte
	if _, err := r.Proc.ReadMemory(code[:], pc); err != nil {
		return nil, nil
	}
	switch r.Arch {
	case coredump.ArchAMD64:
		if !bytes.Equal(code[:], amd64Sigreturn) {
			return nil, nil
		}
	case coredump.ArchARM64:
		if !bytes.Equal(code[:8], arm64Sigreturn) {
			return nil, nil
		}
	default:
		return nil, nil
	}
	sf, err := coredump.ReadSignalFrame(r.Proc, r.Arch, coredump.SignalFrameAtRestorer(r.Arch, sp))
	if err != nil {
		return nil, nil
	}
	return sf, sf.DwarfRegs()
}

// framePointerStep unwinds through a frame-pointer chain: the saved frame
// pointer at [fp] and the return address after it.
func (r *Runtime) framePointerStep(regs *coredump.DwarfRegs) *coredump.DwarfRegs {
	fp, sp := regs.FP(), regs.SP()
	if fp == 0 || fp < sp || fp-sp > 1<<20 || fp%8 != 0 {
		return nil
	}
	var b [16]byte
	if _, err := r.Proc.ReadMemory(b[:], fp); err != nil {
		return nil
	}
	savedFP, ra := le.Uint64(b[:]), le.Uint64(b[8:])
	if !r.isReturnAddress(ra) {
		return nil
	}
	c := &coredump.DwarfRegs{Arch: r.Arch}
	c.SetPC(ra)
	c.SetSP(fp + 16)
	c.SetFP(savedFP)
	return c
}

// scanStep looks above sp for the return address into the caller: a word
// that points into code just after a call instruction. A direct call whose
// target is fn, the function the frame runs, is taken first; stale return
// addresses of earlier calls also sit on stacks, and only the direct-call
// check tells them apart. Without such a call the first plausible word is
// taken.
func (r *Runtime) scanStep(regs *coredump.DwarfRegs, fn uint64) (caller *coredump.DwarfRegs, verified bool) {
	sp := regs.SP()
	var buf [scanWindow]byte
	n, _ := r.Proc.ReadMemory(buf[:], sp)
	found, indirect, any := -1, -1, -1
	for off := 0; off+8 <= n; off += 8 {
		ra := le.Uint64(buf[off:])
		if r.isSigreturn(ra) {
			// A signal handler's return address: the kernel pushed the
			// trampoline, no call instruction precedes it.
			found = off
			break
		}
		if !r.isReturnAddress(ra) {
			continue
		}
		if any < 0 {
			any = off
		}
		if fn == 0 {
			found = off
			break
		}
		if t, ok := r.directCallTarget(ra); ok {
			if r.reaches(t, fn) {
				found = off
				break
			}
			continue // a direct call of some other function: stale
		}
		if indirect < 0 {
			indirect = off
		}
	}
	verified = found >= 0 && (fn != 0 || r.isSigreturn(le.Uint64(buf[found:])))
	if found < 0 {
		found = indirect
	}
	if found < 0 {
		found = any
	}
	if found < 0 {
		return nil, false
	}
	c := &coredump.DwarfRegs{Arch: r.Arch}
	c.SetPC(le.Uint64(buf[found:]))
	c.SetSP(sp + uint64(found) + 8)
	if fp, ok := regs.Get(r.fpReg()); ok {
		c.SetFP(fp)
	}
	return c, verified
}

// directCallTarget decodes the direct call (call rel32, bl) that ends
// just before return address ra.
func (r *Runtime) directCallTarget(ra uint64) (uint64, bool) {
	if r.Arch == coredump.ArchARM64 {
		w, err := r.Proc.ReadUint32(ra - 4)
		if err != nil || w&0xfc000000 != 0x94000000 {
			return 0, false
		}
		return uint64(int64(ra-4) + int64(w&0x3ffffff)<<38>>36), true
	}
	var b [5]byte
	if _, err := r.Proc.ReadMemory(b[:], ra-5); err != nil || b[0] != 0xe8 {
		return 0, false
	}
	return uint64(int64(ra) + int64(int32(le.Uint32(b[1:])))), true
}

// reaches reports whether a call of t ends up in fn: t is fn, a PLT stub
// for it, or a wrapper that tail-jumps to it (musl's free jumps to
// __libc_free).
func (r *Runtime) reaches(t, fn uint64) bool {
	for range 3 {
		if t == fn {
			return true
		}
		if v := r.pltTarget(t); v != 0 {
			t = v
			continue
		}
		var b [5]byte
		if _, err := r.Proc.ReadMemory(b[:], t); err != nil {
			return false
		}
		switch {
		case r.Arch == coredump.ArchAMD64 && b[0] == 0xe9:
			t = uint64(int64(t+5) + int64(int32(le.Uint32(b[1:]))))
		case r.Arch == coredump.ArchAMD64 && b[0] == 0xeb:
			t = uint64(int64(t+2) + int64(int8(b[1])))
		case r.Arch == coredump.ArchARM64 && le.Uint32(b[:])&0xfc000000 == a64B:
			t = uint64(int64(t) + int64(le.Uint32(b[:])&0x3ffffff)<<38>>36)
		default:
			return false
		}
	}
	return t == fn
}

// pltTarget returns the function a PLT stub at t jumps to now (0 when t is
// no stub).
func (r *Runtime) pltTarget(t uint64) uint64 {
	if r.Arch != coredump.ArchAMD64 {
		return 0
	}
	v, note, err := r.throughPLT(t)
	if err != nil || note == "" {
		return 0
	}
	return v
}

func (r *Runtime) fpReg() int {
	if r.Arch == coredump.ArchARM64 {
		return 29
	}
	return 6
}

// isReturnAddress reports whether ra points into executable code just
// after a call instruction.
func (r *Runtime) isReturnAddress(ra uint64) bool { return r.Proc.IsReturnAddress(ra) }
