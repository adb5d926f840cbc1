package libc

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// The emulators follow the thread-pointer arithmetic of a function like
// __errno_location: loads from the GOT (read from the core, where the
// loader's relocations left them), loads relative to the thread pointer,
// immediates, and calls of __tls_get_addr, up to the return. Anything else
// stops them with an error that names the instruction.

// Bounds of one emulation.
const (
	maxEmuInsts = 64
	maxEmuJumps = 4
)

// EmuStep is one instruction the emulation went through.
type EmuStep struct {
	PC   uint64
	Inst string
	// Note says what the instruction read, e.g. "GOT slot 0x7f..de0 =
	// -0x88 (R_X86_64_TPOFF64 errno)".
	Note string
}

// emuResult is what the emulated function returns in one thread.
type emuResult struct {
	value uint64
	steps []EmuStep
	// got is the first GOT slot read, when the result depends on one.
	got      uint64
	gotValue uint64
	gotNote  string
	// selfRead is set when the code read the thread control block's self
	// pointer (%fs:0, or struct pthread.self on arm64).
	selfRead  bool
	selfValue uint64
	tlsGetAdr bool // called __tls_get_addr
	tlsModule uint64
	tlsOffset uint64
}

// errUnsupported marks code the emulator cannot follow.
var errUnsupported = errors.New("unsupported instruction")

var endbr64 = []byte{0xf3, 0x0f, 0x1e, 0xfa}

type amd64Machine struct {
	r     *Runtime
	tp    uint64
	regs  [16]uint64
	known uint16
	res   emuResult
}

func regFamily(r x86asm.Reg) (fam int, size int, ok bool) {
	switch {
	case r >= x86asm.RAX && r <= x86asm.R15:
		return int(r - x86asm.RAX), 8, true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return int(r - x86asm.EAX), 4, true
	}
	return 0, 0, false
}

func (m *amd64Machine) get(r x86asm.Reg) (uint64, error) {
	fam, size, ok := regFamily(r)
	if !ok {
		return 0, fmt.Errorf("register %v: %w", r, errUnsupported)
	}
	if m.known&(1<<fam) == 0 {
		return 0, fmt.Errorf("register %v is not set by the code before use", r)
	}
	v := m.regs[fam]
	if size == 4 {
		v &= 0xffffffff
	}
	return v, nil
}

func (m *amd64Machine) set(r x86asm.Reg, v uint64) error {
	fam, size, ok := regFamily(r)
	if !ok {
		return fmt.Errorf("write to register %v: %w", r, errUnsupported)
	}
	if size == 4 {
		v &= 0xffffffff // 32-bit writes zero the upper half
	}
	m.regs[fam], m.known = v, m.known|1<<fam
	return nil
}

// addr computes a memory operand's effective address and says what kind
// of address it is.
func (m *amd64Machine) addr(mem x86asm.Mem, next uint64) (uint64, string, error) {
	var a uint64
	kind := ""
	switch mem.Base {
	case 0:
	case x86asm.RIP:
		a, kind = next, "rip"
	default:
		v, err := m.get(mem.Base)
		if err != nil {
			return 0, "", err
		}
		a = v
	}
	if mem.Index != 0 {
		v, err := m.get(mem.Index)
		if err != nil {
			return 0, "", err
		}
		a += v * uint64(mem.Scale)
	}
	a += uint64(mem.Disp)
	switch mem.Segment {
	case 0, x86asm.DS, x86asm.SS:
	case x86asm.FS:
		a, kind = a+m.tp, "fs"
	default:
		return 0, "", fmt.Errorf("segment %v: %w", mem.Segment, errUnsupported)
	}
	return a, kind, nil
}

// load reads size bytes of target memory at a, noting what they were.
func (m *amd64Machine) load(a uint64, size int, kind string, disp int64) (uint64, string, error) {
	if size != 4 && size != 8 {
		return 0, "", fmt.Errorf("%d-byte load: %w", size, errUnsupported)
	}
	var b [8]byte
	if _, err := m.r.Proc.ReadMemory(b[:size], a); err != nil {
		return 0, "", err
	}
	v := le.Uint64(b[:])
	switch kind {
	case "fs":
		if disp == 0 {
			m.res.selfRead, m.res.selfValue = true, v
			return v, fmt.Sprintf("%%fs:0 = %#x (TCB self pointer)", v), nil
		}
		return v, fmt.Sprintf("%%fs:%#x = %#x", disp, v), nil
	case "rip":
		note := fmt.Sprintf("GOT slot %#x = %s", a, signedHex(v))
		if rel := m.r.describeSlot(a); rel != "" {
			note += " (" + rel + ")"
		}
		if m.res.got == 0 {
			m.res.got, m.res.gotValue, m.res.gotNote = a, v, note
		}
		return v, note, nil
	}
	return v, fmt.Sprintf("[%#x] = %#x", a, v), nil
}

func signedHex(v uint64) string {
	if int64(v) < 0 {
		return fmt.Sprintf("-%#x", -int64(v))
	}
	return fmt.Sprintf("%#x", v)
}

// operand returns the value of a source operand.
func (m *amd64Machine) operand(inst x86asm.Inst, a x86asm.Arg, next uint64) (uint64, string, error) {
	switch a := a.(type) {
	case x86asm.Reg:
		v, err := m.get(a)
		return v, "", err
	case x86asm.Imm:
		return uint64(a), "", nil
	case x86asm.Mem:
		ea, kind, err := m.addr(a, next)
		if err != nil {
			return 0, "", err
		}
		return m.load(ea, inst.MemBytes, kind, a.Disp)
	}
	return 0, "", fmt.Errorf("operand %v: %w", a, errUnsupported)
}

// emulateAMD64 runs the code at pc for a thread whose fs_base is tp and
// returns %rax at the return.
func (r *Runtime) emulateAMD64(pc, tp uint64) (*emuResult, error) {
	m := &amd64Machine{r: r, tp: tp}
	jumps := 0
	for range maxEmuInsts {
		var code [16]byte
		n, err := r.Proc.ReadMemory(code[:], pc)
		if n == 0 {
			return nil, fmt.Errorf("code at %#x: %w", pc, err)
		}
		if bytes.HasPrefix(code[:n], endbr64) {
			m.res.steps = append(m.res.steps, EmuStep{PC: pc, Inst: "endbr64"})
			pc += 4
			continue
		}
		inst, err := x86asm.Decode(code[:n], 64)
		if err != nil {
			return nil, fmt.Errorf("cannot decode the instruction at %#x (% x): %v", pc, code[:min(n, 8)], err)
		}
		next := pc + uint64(inst.Len)
		step := EmuStep{PC: pc, Inst: strings.Replace(x86asm.GNUSyntax(inst, pc, nil), "%fs:,", "%fs:0x0,", 1)}
		args := inst.Args
		switch inst.Op {
		case x86asm.NOP:
		case x86asm.RET:
			v, err := m.get(x86asm.RAX)
			if err != nil {
				return nil, fmt.Errorf("at the return %#x: %w", pc, err)
			}
			m.res.steps = append(m.res.steps, step)
			m.res.value = v
			return &m.res, nil
		case x86asm.PUSH, x86asm.POP:
			// Frame-pointer prologues and epilogues do not touch the
			// result.
			if reg, ok := args[0].(x86asm.Reg); !ok || reg != x86asm.RBP {
				return nil, fmt.Errorf("%s at %#x: %w", inst, pc, errUnsupported)
			}
		case x86asm.MOV, x86asm.ADD, x86asm.SUB, x86asm.XOR, x86asm.LEA:
			dst, ok := args[0].(x86asm.Reg)
			if !ok {
				return nil, fmt.Errorf("%s at %#x writes memory: %w", inst, pc, errUnsupported)
			}
			if dst == x86asm.RBP || dst == x86asm.RSP || dst == x86asm.EBP {
				break // frame set-up
			}
			var src uint64
			var note string
			if inst.Op == x86asm.LEA {
				mem, ok := args[1].(x86asm.Mem)
				if !ok {
					return nil, fmt.Errorf("%s at %#x: %w", inst, pc, errUnsupported)
				}
				ea, _, err := m.addr(mem, next)
				if err != nil {
					return nil, fmt.Errorf("%s at %#x: %w", inst, pc, err)
				}
				src = ea
			} else if inst.Op == x86asm.XOR && args[1] == args[0] {
				src = 0
			} else {
				src, note, err = m.operand(inst, args[1], next)
				if err != nil {
					return nil, fmt.Errorf("%s at %#x: %w", inst, pc, err)
				}
			}
			v := src
			if inst.Op == x86asm.ADD || inst.Op == x86asm.SUB || inst.Op == x86asm.XOR {
				cur, err := m.get(dst)
				if err != nil {
					return nil, fmt.Errorf("%s at %#x: %w", inst, pc, err)
				}
				switch inst.Op {
				case x86asm.ADD:
					v = cur + src
				case x86asm.SUB:
					v = cur - src
				case x86asm.XOR:
					v = cur ^ src
				}
			}
			if err := m.set(dst, v); err != nil {
				return nil, fmt.Errorf("%s at %#x: %w", inst, pc, err)
			}
			step.Note = note
		case x86asm.JMP:
			target, note, err := m.branchTarget(inst, args[0], next)
			if err != nil {
				return nil, fmt.Errorf("%s at %#x: %w", inst, pc, err)
			}
			if jumps++; jumps > maxEmuJumps {
				return nil, fmt.Errorf("more than %d jumps from the entry", maxEmuJumps)
			}
			step.Note = note
			m.res.steps = append(m.res.steps, step)
			pc = target
			continue
		case x86asm.CALL:
			target, note, err := m.branchTarget(inst, args[0], next)
			if err != nil {
				return nil, fmt.Errorf("%s at %#x: %w", inst, pc, err)
			}
			v, mod, off, cnote, err := r.callTLSGetAddr(target, m.tp, func() (uint64, error) { return m.get(x86asm.RDI) })
			if err != nil {
				return nil, fmt.Errorf("%s at %#x: %w", inst, pc, err)
			}
			m.res.tlsGetAdr, m.res.tlsModule, m.res.tlsOffset = true, mod, off
			m.set(x86asm.RAX, v)
			step.Note = joinNotes(note, cnote)
		default:
			return nil, fmt.Errorf("%s at %#x: %w", inst, pc, errUnsupported)
		}
		m.res.steps = append(m.res.steps, step)
		pc = next
	}
	return nil, fmt.Errorf("no return within %d instructions", maxEmuInsts)
}

// branchTarget resolves a jump or call target: direct, or through a GOT
// slot (a PLT stub's jmp *slot, or -fno-plt's call *slot).
func (m *amd64Machine) branchTarget(inst x86asm.Inst, a x86asm.Arg, next uint64) (uint64, string, error) {
	switch a := a.(type) {
	case x86asm.Rel:
		t := next + uint64(int64(a))
		return m.r.throughPLT(t)
	case x86asm.Mem:
		ea, kind, err := m.addr(a, next)
		if err != nil {
			return 0, "", err
		}
		v, note, err := m.load(ea, 8, kind, a.Disp)
		return v, note, err
	}
	return 0, "", fmt.Errorf("indirect branch through %v: %w", a, errUnsupported)
}

// throughPLT follows a PLT stub (endbr64; bnd jmp *slot(%rip)) to the
// function its GOT slot holds now.
func (r *Runtime) throughPLT(t uint64) (uint64, string, error) {
	var code [16]byte
	n, _ := r.Proc.ReadMemory(code[:], t) // decode what is readable; a cut instruction fails to decode
	b := code[:n]
	if bytes.HasPrefix(b, endbr64) {
		b, t = b[4:], t+4
	}
	inst, err := x86asm.Decode(b, 64)
	if err != nil || inst.Op != x86asm.JMP {
		return t, "", nil // not a stub: the function itself
	}
	mem, ok := inst.Args[0].(x86asm.Mem)
	if !ok || mem.Base != x86asm.RIP {
		return t, "", nil
	}
	slot := t + uint64(inst.Len) + uint64(mem.Disp)
	v, err := r.Proc.ReadUint64(slot)
	if err != nil {
		return 0, "", fmt.Errorf("PLT slot %#x: %w", slot, err)
	}
	return v, fmt.Sprintf("through PLT slot %#x = %#x", slot, v), nil
}

func joinNotes(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
