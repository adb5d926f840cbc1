package libc

import (
	"fmt"

	"golang.org/x/arch/arm64/arm64asm"
)

// The arm64 emulator decodes the few instruction forms the thread-pointer
// arithmetic of __errno_location uses in glibc and musl (A64 encodings from
// the Arm Architecture Reference Manual); arm64asm only prints them.
const (
	a64MRSTPIDR    = 0xd53bd040 // mrs xT, tpidr_el0 (mask 0xffffffe0)
	a64RET         = 0xd65f03c0
	a64HintMask    = 0xfffff01f // nop, bti, paciasp, autiasp...
	a64Hint        = 0xd503201f
	a64ADRPMask    = 0x9f000000
	a64ADRP        = 0x90000000
	a64LDRX        = 0xf9400000 // ldr xT, [xN, #imm*8] (mask 0xffc00000)
	a64LDRW        = 0xb9400000 // ldr wT, [xN, #imm*4]
	a64ADDImm      = 0x91000000 // add xD, xN, #imm{, lsl #12} (mask 0xff800000)
	a64SUBImm      = 0xd1000000
	a64ADDReg      = 0x8b000000 // add xD, xN, xM, shift #amount (mask 0xff200000)
	a64SUBReg      = 0xcb000000
	a64MOVReg      = 0xaa0003e0 // orr xD, xzr, xM (mask 0xffe0ffe0)
	a64B           = 0x14000000 // b imm26 (mask 0xfc000000)
	a64STPFrame    = 0xa9bf7bfd // stp x29, x30, [sp, #-16]!
	a64LDPFrame    = 0xa8c17bfd // ldp x29, x30, [sp], #16
	a64MOVFPFromSP = 0x910003fd // mov x29, sp
)

type arm64Machine struct {
	r     *Runtime
	tp    uint64
	regs  [31]uint64
	known uint32
	// pcrel marks registers holding a pc-relative address (adrp, then
	// add): loads through them read the GOT or other data of the image.
	pcrel uint32
	res   emuResult
}

func (m *arm64Machine) get(n uint32) (uint64, error) {
	if n == 31 {
		return 0, nil // xzr in the forms decoded here
	}
	if m.known&(1<<n) == 0 {
		return 0, fmt.Errorf("register x%d is not set by the code before use", n)
	}
	return m.regs[n], nil
}

func (m *arm64Machine) set(n uint32, v uint64) {
	if n < 31 {
		m.regs[n], m.known = v, m.known|1<<n
		m.pcrel &^= 1 << n
	}
}

func (m *arm64Machine) setPCRel(n uint32, v uint64) {
	m.set(n, v)
	if n < 31 {
		m.pcrel |= 1 << n
	}
}

// emulateARM64 runs the code at pc for a thread whose tpidr_el0 is tp and
// returns x0 at the return.
func (r *Runtime) emulateARM64(pc, tp uint64) (*emuResult, error) {
	m := &arm64Machine{r: r, tp: tp}
	jumps := 0
	for range maxEmuInsts {
		w, err := r.Proc.ReadUint32(pc)
		if err != nil {
			return nil, fmt.Errorf("code at %#x: %w", pc, err)
		}
		text := fmt.Sprintf(".word %#08x", w)
		var b [4]byte
		le.PutUint32(b[:], w)
		if inst, err := arm64asm.Decode(b[:]); err == nil {
			text = inst.String()
		}
		step := EmuStep{PC: pc, Inst: text}
		rd, rn, rm := w&31, (w>>5)&31, (w>>16)&31
		next := pc + 4
		switch {
		case w == a64RET:
			v, err := m.get(0)
			if err != nil {
				return nil, fmt.Errorf("at the return %#x: %w", pc, err)
			}
			m.res.steps = append(m.res.steps, step)
			m.res.value = v
			return &m.res, nil
		case w&a64HintMask == a64Hint, w == a64STPFrame, w == a64LDPFrame, w == a64MOVFPFromSP:
		case w&0xffffffe0 == a64MRSTPIDR:
			m.set(rd, tp)
			step.Note = fmt.Sprintf("tpidr_el0 = %#x", tp)
		case w&a64ADRPMask == a64ADRP:
			imm := int64((w>>29)&3|((w>>5)&0x7ffff)<<2) << 12
			imm = imm << 31 >> 31 // sign-extend the 33-bit offset
			m.setPCRel(rd, uint64(int64(pc&^0xfff)+imm))
		case w&0xffc00000 == a64LDRX, w&0xffc00000 == a64LDRW:
			size := 8
			if w&0xffc00000 == a64LDRW {
				size = 4
			}
			base, err := m.get(rn)
			if rn == 31 {
				return nil, fmt.Errorf("%s at %#x loads from the stack: %w", text, pc, errUnsupported)
			}
			if err != nil {
				return nil, fmt.Errorf("%s at %#x: %w", text, pc, err)
			}
			a := base + uint64((w>>10)&0xfff)*uint64(size)
			var buf [8]byte
			if _, err := r.Proc.ReadMemory(buf[:size], a); err != nil {
				return nil, fmt.Errorf("%s at %#x: %w", text, pc, err)
			}
			v := le.Uint64(buf[:])
			pcrel := m.pcrel&(1<<rn) != 0
			m.set(rd, v)
			if pcrel {
				step.Note = fmt.Sprintf("GOT slot %#x = %s", a, signedHex(v))
				if rel := r.describeSlot(a); rel != "" {
					step.Note += " (" + rel + ")"
				}
				if m.res.got == 0 {
					m.res.got, m.res.gotValue, m.res.gotNote = a, v, step.Note
				}
			} else {
				step.Note = fmt.Sprintf("[%#x] = %#x", a, v)
			}
		case w&0xff800000 == a64ADDImm, w&0xff800000 == a64SUBImm:
			if rn == 31 {
				return nil, fmt.Errorf("%s at %#x: %w", text, pc, errUnsupported)
			}
			v, err := m.get(rn)
			if err != nil {
				return nil, fmt.Errorf("%s at %#x: %w", text, pc, err)
			}
			imm := uint64((w >> 10) & 0xfff)
			if w&(1<<22) != 0 {
				imm <<= 12
			}
			if w&0xff800000 == a64SUBImm {
				v -= imm
			} else {
				v += imm
			}
			if m.pcrel&(1<<rn) != 0 {
				m.setPCRel(rd, v)
			} else {
				m.set(rd, v)
			}
		case w&0xff200000 == a64ADDReg, w&0xff200000 == a64SUBReg:
			if (w>>10)&0x3f != 0 {
				return nil, fmt.Errorf("%s at %#x (shifted operand): %w", text, pc, errUnsupported)
			}
			a, err1 := m.get(rn)
			b, err2 := m.get(rm)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s at %#x: %v", text, pc, firstErr(err1, err2))
			}
			if w&0xff200000 == a64SUBReg {
				m.set(rd, a-b)
			} else {
				m.set(rd, a+b)
			}
		case w&0xffe0ffe0 == a64MOVReg:
			v, err := m.get(rm)
			if err != nil {
				return nil, fmt.Errorf("%s at %#x: %w", text, pc, err)
			}
			m.set(rd, v)
		case w&0xfc000000 == a64B:
			if jumps++; jumps > maxEmuJumps {
				return nil, fmt.Errorf("more than %d jumps from the entry", maxEmuJumps)
			}
			off := int64(w&0x3ffffff) << 38 >> 36 // imm26 * 4, sign-extended
			m.res.steps = append(m.res.steps, step)
			pc = uint64(int64(pc) + off)
			continue
		default:
			return nil, fmt.Errorf("%s at %#x: %w", text, pc, errUnsupported)
		}
		m.res.steps = append(m.res.steps, step)
		pc = next
	}
	return nil, fmt.Errorf("no return within %d instructions", maxEmuInsts)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
