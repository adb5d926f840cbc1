package libc

import (
	"bytes"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/insn"
	"golang.org/x/arch/x86/x86asm"
)

// maxUseScan bounds the code of one C function scanned for errno use.
const maxUseScan = 16 << 10

// ErrnoAccess reports whether the C function at addr reads or writes
// errno: it disassembles the function (and, depth levels down, the
// functions of the same image it calls directly) and follows the address
// a call of __errno_location returns into loads and stores. amd64 only;
// elsewhere it reports neither.
func (r *Runtime) ErrnoAccess(addr uint64, depth int) (reads, writes bool) {
	if r.Arch != coredump.ArchAMD64 {
		return false, false
	}
	return r.errnoAccess(addr, depth, map[uint64]bool{})
}

func (r *Runtime) errnoAccess(addr uint64, depth int, seen map[uint64]bool) (reads, writes bool) {
	if seen[addr] {
		return false, false
	}
	seen[addr] = true
	im, sym, ok := r.Proc.Symbolize(addr)
	if !ok || sym.Addr != addr {
		return false, false
	}
	size := sym.Size
	if size == 0 || size > maxUseScan {
		size = maxUseScan
	}
	code, _ := insn.ReadCode(r.Proc, r.Arch, addr, addr+size, maxUseScan) // scan the readable prefix of the function only
	var tainted uint16                                                    // registers holding the errno address
	for in := range code.Insts() {
		inst := in.X86
		switch inst.Op {
		case x86asm.CALL:
			tainted = 0
			t := r.directTarget(in)
			if t == 0 {
				continue
			}
			if r.isErrnoFunc(t) {
				tainted = 1 << 0 // rax
				continue
			}
			if depth > 0 && im.Contains(t) {
				rd, wr := r.errnoAccess(t, depth-1, seen)
				reads, writes = reads || rd, writes || wr
			}
			continue
		case x86asm.RET:
			tainted = 0
			continue
		}
		if tainted == 0 {
			continue
		}
		// A memory operand based on a tainted register is errno itself.
		for k, a := range inst.Args {
			mem, ok := a.(x86asm.Mem)
			if !ok || mem.Segment != 0 {
				continue
			}
			if fam, _, ok := regFamily(mem.Base); ok && tainted&(1<<fam) != 0 && mem.Index == 0 {
				if k == 0 && inst.Op != x86asm.CMP && inst.Op != x86asm.TEST {
					writes = true
					if inst.Op != x86asm.MOV {
						reads = true // add, or, inc... read it first
					}
				} else {
					reads = true
				}
			}
		}
		// Track the pointer through register moves; any other write to
		// a tainted register ends it.
		if dst, ok := inst.Args[0].(x86asm.Reg); ok {
			fam, _, ok := regFamily(dst)
			if !ok {
				continue
			}
			src, isReg := inst.Args[1].(x86asm.Reg)
			sfam, _, sok := regFamily(src)
			if inst.Op == x86asm.MOV && isReg && sok && tainted&(1<<sfam) != 0 {
				tainted |= 1 << fam
			} else {
				tainted &^= 1 << fam
			}
		}
	}
	return reads, writes
}

// directTarget resolves a call's target: direct, or through a GOT slot
// (call *slot(%rip)).
func (r *Runtime) directTarget(in insn.Inst) uint64 {
	if t, ok := in.CallTarget(); ok {
		return t
	}
	if slot, ok := in.RIPTarget(); ok {
		if v, err := r.Proc.ReadUint64(slot); err == nil {
			return v
		}
	}
	return 0
}

// isErrnoFunc reports whether a call of t reaches __errno_location: an
// implementation itself, or a PLT stub whose slot is bound (or, bound
// lazily, relocated) to one.
func (r *Runtime) isErrnoFunc(t uint64) bool {
	if r.implAt(t) != nil {
		return true
	}
	var code [16]byte
	n, _ := r.Proc.ReadMemory(code[:], t) // decode what is readable; a cut instruction fails to decode
	b, at := code[:n], t
	if bytes.HasPrefix(b, endbr64) {
		b, at = b[4:], t+4
	}
	inst, err := x86asm.Decode(b, 64)
	if err != nil || inst.Op != x86asm.JMP {
		return false
	}
	mem, ok := inst.Args[0].(x86asm.Mem)
	if !ok || mem.Base != x86asm.RIP {
		return false
	}
	slot := at + uint64(inst.Len) + uint64(mem.Disp)
	if v, err := r.Proc.ReadUint64(slot); err == nil && r.implAt(v) != nil {
		return true
	}
	im := r.Proc.FindImage(slot)
	if im == nil {
		return false
	}
	rel, ok := r.elf(im).relocAt(slot - im.Bias)
	return ok && rel.Sym != nil && contains(errnoFuncs, rel.Sym.Name)
}
