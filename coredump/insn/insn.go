// Package insn decodes the machine code of a process (x86-64 and arm64,
// through golang.org/x/arch): one instruction with its memory operand and
// what it does (Decode, Insn), and the instructions of a range of code one
// after another (ReadCode, Code.Insts) with the addresses they refer to
// (Code.Refs). Every reader of code (the Go runtime's, the C runtime's,
// the diagnoses') decodes through it, so they agree on what an
// instruction is and on how bytes that are none are passed over.
package insn

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"golang.org/x/arch/arm64/arm64asm"
	"golang.org/x/arch/x86/x86asm"
)

// Access is the kind of memory access an instruction made.
type Access uint8

const (
	AccessUnknown Access = iota
	AccessRead
	AccessWrite
	AccessExecute
)

var accessNames = [...]string{AccessUnknown: "unknown", AccessRead: "read", AccessWrite: "write", AccessExecute: "execute"}

func (a Access) String() string {
	if int(a) < len(accessNames) {
		return accessNames[a]
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// MarshalText writes the access by name.
func (a Access) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// MemOperand is an instruction's memory operand: Segment:[Base + Index*Scale
// + Disp], Size bytes wide.
type MemOperand struct {
	Segment string `json:"segment,omitempty"`
	Base    string `json:"base,omitempty"` // "rip" for rip-relative
	Index   string `json:"index,omitempty"`
	Scale   uint8  `json:"scale,omitempty"`
	Disp    int64  `json:"disp"`
	Size    int    `json:"size,omitempty"`
}

func (m *MemOperand) String() string {
	var parts []string
	if m.Base != "" {
		parts = append(parts, m.Base)
	}
	if m.Index != "" {
		parts = append(parts, fmt.Sprintf("%s*%d", m.Index, m.Scale))
	}
	s := strings.Join(parts, "+")
	switch {
	case m.Disp > 0 && s != "":
		s += fmt.Sprintf("+%#x", m.Disp)
	case m.Disp < 0:
		s += fmt.Sprintf("-%#x", -m.Disp)
	case s == "":
		s = fmt.Sprintf("%#x", m.Disp)
	}
	if m.Segment != "" {
		return m.Segment + ":[" + s + "]"
	}
	return "[" + s + "]"
}

// Insn is one decoded machine instruction.
type Insn struct {
	PC   coredump.Addr `json:"pc"`
	Len  int           `json:"len"`
	Text string        `json:"text"` // GNU syntax
	Op   string        `json:"op"`
	// Mem is the explicit memory operand, and Access what the instruction
	// does with it.
	Mem    *MemOperand `json:"mem,omitempty"`
	Access Access      `json:"access,omitempty"`
	// StackWrite: the instruction writes below the stack pointer (push,
	// call, or an explicit store through rsp/sp).
	StackWrite bool `json:"stack_write,omitempty"`
	// Vector names the instruction set extension a VEX/EVEX encoded
	// instruction needs ("AVX", "AVX-512").
	Vector string `json:"vector,omitempty"`
	// AlignRequired is the alignment a vector load or store insists on
	// (movaps, movdqa, ...), 0 when none.
	AlignRequired int  `json:"align_required,omitempty"`
	Trap          bool `json:"trap,omitempty"`   // ud2, brk, udf
	Divide        bool `json:"divide,omitempty"` // div, idiv
	Halt          bool `json:"halt,omitempty"`   // hlt (privileged in user mode)
	Call          bool `json:"call,omitempty"`
	Jump          bool `json:"jump,omitempty"` // unconditional jmp
	// Target is the register an indirect call or jump goes through.
	Target string `json:"target,omitempty"`
	// Dst is the general register the instruction writes (its 64-bit
	// name), "" when it writes none or the decoder does not say.
	Dst string `json:"dst,omitempty"`
	Ret bool   `json:"ret,omitempty"`
	// Bytes are the instruction's encoding.
	Bytes []byte `json:"-"`
}

// DecodeAt decodes the instruction at pc from the process's memory (code
// pages come from the image file on disk when the core does not hold
// them).
func DecodeAt(p *coredump.Process, pc uint64) (*Insn, error) {
	var buf [16]byte
	n, err := p.ReadMemory(buf[:], pc)
	if n == 0 {
		return nil, fmt.Errorf("instruction at %#x: %w", pc, err)
	}
	return Decode(p.Arch, buf[:n], pc)
}

// Decode decodes one instruction of arch from code at pc.
func Decode(arch coredump.Arch, code []byte, pc uint64) (*Insn, error) {
	switch arch {
	case coredump.ArchAMD64:
		return decodeAMD64(code, pc)
	case coredump.ArchARM64:
		return decodeARM64(code, pc)
	}
	return nil, fmt.Errorf("cannot decode %s instructions", arch)
}

// legacyPrefix reports x86 legacy and REX prefixes.
func legacyPrefix(b byte) bool {
	switch b {
	case 0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65:
		return true
	}
	return b&0xf0 == 0x40
}

func decodeAMD64(code []byte, pc uint64) (*Insn, error) {
	in := &Insn{PC: coredump.Addr(pc)}
	i := 0
	for i < len(code) && i < 14 && legacyPrefix(code[i]) {
		i++
	}
	if i < len(code) {
		switch code[i] {
		case 0xc4, 0xc5:
			in.Vector = "AVX"
		case 0x62:
			in.Vector = "AVX-512"
		}
		if code[i] == 0x0f && i+1 < len(code) && code[i+1] == 0x0b {
			in.Trap = true
		}
	}
	inst, err := decodeX86(code)
	if err != nil {
		if in.Vector != "" {
			// x86asm does not decode VEX/EVEX: the extension is what matters.
			in.Op, in.Text = in.Vector+" instruction", fmt.Sprintf("%s-encoded instruction % x", in.Vector, code[:min(len(code), 8)])
			return in, nil
		}
		return nil, fmt.Errorf("instruction at %#x (% x): %w", pc, code[:min(len(code), 8)], err)
	}
	in.Len = inst.Len
	in.Bytes = append([]byte(nil), code[:inst.Len]...)
	in.Op = strings.ToLower(inst.Op.String())
	in.Text = x86asm.GNUSyntax(inst, pc, nil)
	switch inst.Op {
	case x86asm.UD2, x86asm.UD1, x86asm.UD0:
		in.Trap = true
	case x86asm.DIV, x86asm.IDIV:
		in.Divide = true
	case x86asm.HLT:
		in.Halt = true
	case x86asm.CALL, x86asm.LCALL:
		in.Call, in.StackWrite = true, true
	case x86asm.JMP, x86asm.LJMP:
		in.Jump = true
	case x86asm.RET, x86asm.LRET:
		in.Ret = true
	case x86asm.PUSH, x86asm.PUSHF, x86asm.PUSHFQ, x86asm.ENTER:
		in.StackWrite = true
	case x86asm.MOVAPS, x86asm.MOVAPD, x86asm.MOVDQA, x86asm.MOVNTPS, x86asm.MOVNTPD, x86asm.MOVNTDQ, x86asm.MOVNTDQA:
		in.AlignRequired = 16
	case x86asm.VMOVAPS, x86asm.VMOVAPD, x86asm.VMOVDQA, x86asm.VMOVNTDQ, x86asm.VMOVNTDQA, x86asm.VMOVNTPS, x86asm.VMOVNTPD:
		in.AlignRequired = max(inst.MemBytes, 16)
	}
	for ai, a := range inst.Args {
		if a == nil {
			break
		}
		m, ok := a.(x86asm.Mem)
		if !ok {
			continue
		}
		mo := &MemOperand{Base: regName(m.Base), Index: regName(m.Index), Scale: m.Scale, Disp: m.Disp, Size: inst.MemBytes}
		if m.Segment != 0 {
			mo.Segment = regName(m.Segment)
		}
		if m.Index == 0 {
			mo.Scale = 0
		}
		in.Mem = mo
		in.Access = AccessRead
		if ai == 0 && writesFirstArg(inst.Op) {
			in.Access = AccessWrite
		}
		if inst.Op == x86asm.LEA {
			in.Access = AccessUnknown // computes an address, touches no memory
		}
		if mo.Base == "rsp" && in.Access == AccessWrite {
			in.StackWrite = true
		}
		break
	}
	if (in.Call || in.Jump) && inst.Args[0] != nil {
		if r, ok := inst.Args[0].(x86asm.Reg); ok {
			in.Target = regName(r)
		}
	}
	if r, ok := inst.Args[0].(x86asm.Reg); ok && !in.Call && !in.Jump && writesFirstArg(inst.Op) {
		in.Dst = regName(r)
		if full, ok := amd64Reg64[in.Dst]; ok {
			in.Dst = full
		}
	}
	if in.Mem == nil && strings.HasPrefix(in.Op, "sub") && len(inst.Args) > 0 {
		if r, ok := inst.Args[0].(x86asm.Reg); ok && r == x86asm.RSP {
			in.StackWrite = true // sub rsp, N: a frame being allocated
		}
	}
	return in, nil
}

// writesFirstArg reports whether an instruction stores to its first
// (Intel order: destination) operand.
func writesFirstArg(op x86asm.Op) bool {
	switch op {
	case x86asm.CMP, x86asm.TEST, x86asm.PUSH, x86asm.CALL, x86asm.JMP, x86asm.LCALL, x86asm.LJMP,
		x86asm.BT, x86asm.UCOMISS, x86asm.UCOMISD, x86asm.COMISS, x86asm.COMISD, x86asm.PTEST,
		x86asm.MUL, x86asm.IMUL, x86asm.DIV, x86asm.IDIV, x86asm.PREFETCHT0, x86asm.PREFETCHT1,
		x86asm.PREFETCHT2, x86asm.PREFETCHNTA, x86asm.PREFETCHW, x86asm.CLFLUSH, x86asm.NOP,
		x86asm.FLD, x86asm.FILD, x86asm.FCOM, x86asm.FCOMP, x86asm.LDMXCSR, x86asm.FLDCW:
		return false
	}
	return true
}

func regName(r x86asm.Reg) string {
	if r == 0 {
		return ""
	}
	return strings.ToLower(r.String())
}

// amd64Reg64 maps 32-bit register names to the 64-bit register they are
// the low half of.
var amd64Reg64 = map[string]string{
	"eax": "rax", "ebx": "rbx", "ecx": "rcx", "edx": "rdx", "esi": "rsi", "edi": "rdi", "ebp": "rbp", "esp": "rsp",
	"r8l": "r8", "r8d": "r8", "r9d": "r9", "r10d": "r10", "r11d": "r11", "r12d": "r12", "r13d": "r13", "r14d": "r14", "r15d": "r15",
}

// CallsLoadedValue reports that the value the load in writes to a
// register is called within the next few instructions, before anything
// else writes that register: the loaded word was a code pointer, read from
// a func value (Go loads the code pointer of a closure from the funcval
// and calls it). A fault on that load means the func value was nil.
func CallsLoadedValue(p *coredump.Process, in *Insn) (callPC uint64, ok bool) {
	if in == nil || in.Dst == "" || in.Access != AccessRead {
		return 0, false
	}
	pc := uint64(in.PC) + uint64(in.Len)
	for range maxCallLookahead {
		next, err := DecodeAt(p, pc)
		if err != nil {
			return 0, false
		}
		switch {
		case next.Call:
			return pc, next.Target == in.Dst
		case next.Jump, next.Ret, next.Dst == in.Dst:
			return 0, false
		}
		pc += uint64(next.Len)
	}
	return 0, false
}

// maxCallLookahead bounds the instructions CallsLoadedValue looks at: Go
// moves the arguments into place between the load and the call.
const maxCallLookahead = 8

// RegValue returns register name's value from regs, understanding 32-bit
// names and the thread pointer segments.
func RegValue(regs *coredump.Registers, name string) (uint64, bool) {
	if regs == nil || name == "" {
		return 0, false
	}
	if v, ok := regs.Get(name); ok {
		return v, true
	}
	if full, ok := amd64Reg64[name]; ok {
		v, ok := regs.Get(full)
		return v & 0xffffffff, ok
	}
	if strings.HasPrefix(name, "w") && regs.Arch == coredump.ArchARM64 {
		v, ok := regs.Get("x" + name[1:])
		return v & 0xffffffff, ok
	}
	return 0, false
}

// EffectiveAddr computes the operand's address from the registers at the
// instruction; ok is false when a register is unknown.
func (m *MemOperand) EffectiveAddr(regs *coredump.Registers, pc uint64, insnLen int) (uint64, bool) {
	var a uint64
	switch m.Base {
	case "":
	case "rip":
		a = pc + uint64(insnLen)
	default:
		v, ok := RegValue(regs, m.Base)
		if !ok {
			return 0, false
		}
		a = v
	}
	if m.Index != "" {
		v, ok := RegValue(regs, m.Index)
		if !ok {
			return 0, false
		}
		a += v * uint64(max(m.Scale, 1))
	}
	a += uint64(m.Disp)
	switch m.Segment {
	case "fs":
		a += regs.TP
	case "gs":
		v, _ := regs.Get("gs_base")
		a += v
	}
	return a, true
}

var reARM64Mem = regexp.MustCompile(`^\[(x\d+|sp)(?:,\s*#(-?(?:0x)?[0-9a-f]+))?\]!?$`)

func decodeARM64(code []byte, pc uint64) (*Insn, error) {
	if len(code) < 4 {
		return nil, errors.New("short instruction")
	}
	inst, err := arm64asm.Decode(code[:4])
	if err != nil {
		return nil, fmt.Errorf("instruction at %#x (% x): %w", pc, code[:4], err)
	}
	in := &Insn{PC: coredump.Addr(pc), Len: 4, Bytes: append([]byte(nil), code[:4]...)}
	in.Op = strings.ToLower(inst.Op.String())
	in.Text = arm64asm.GNUSyntax(inst)
	switch inst.Op {
	case arm64asm.BRK:
		in.Trap = true
	case arm64asm.BL:
		in.Call = true
	case arm64asm.BLR, arm64asm.BR:
		in.Call = inst.Op == arm64asm.BLR
		in.Jump = inst.Op == arm64asm.BR
		if r, ok := inst.Args[0].(arm64asm.Reg); ok {
			in.Target = strings.ToLower(r.String())
		}
	case arm64asm.RET:
		in.Ret = true
	case arm64asm.SDIV, arm64asm.UDIV:
		in.Divide = true
	}
	for _, a := range inst.Args {
		if a == nil {
			break
		}
		switch m := a.(type) {
		case arm64asm.MemImmediate, arm64asm.MemExtend:
			mo := &MemOperand{}
			s := strings.ToLower(m.String())
			if sm := reARM64Mem.FindStringSubmatch(s); sm != nil {
				mo.Base = sm[1]
				if sm[2] != "" {
					d, _ := strconv.ParseInt(strings.Replace(sm[2], "0x", "", 1), map[bool]int{true: 16, false: 10}[strings.Contains(sm[2], "0x")], 64)
					mo.Disp = d
				}
			} else if me, ok := m.(arm64asm.MemExtend); ok {
				mo.Base = strings.ToLower(me.Base.String())
				mo.Index = strings.ToLower(me.Index.String())
				mo.Scale = 1 << me.Amount
			}
			in.Mem = mo
			in.Access = AccessRead
			if strings.HasPrefix(in.Op, "st") {
				in.Access = AccessWrite
				in.StackWrite = mo.Base == "sp"
			}
		}
	}
	return in, nil
}
