package insn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/coreexplain/coreexplain/coredump"
	"golang.org/x/arch/arm64/arm64asm"
	"golang.org/x/arch/x86/x86asm"
)

// Code is machine code of one architecture: Bytes as they lie at address
// PC. Its methods decode it front to back (a linear sweep), the way the
// readers of a function's code take it: from the function's entry to its
// end as the symbol table or pclntab gives them.
type Code struct {
	Arch  coredump.Arch
	PC    uint64
	Bytes []byte
}

// ReadCode reads the code of [start, end) from r, whose offsets are
// addresses (a *coredump.Process is such a reader). A range longer than
// limit bytes is refused before anything is allocated: start and end come
// from a symbol table or a pclntab, which a damaged core or binary can
// make anything. When r serves fewer bytes than asked, ReadCode returns
// the Code of the bytes it did read together with the error, the way
// io.ReaderAt does; a caller that can use part of a function checks
// len(Bytes) rather than the error.
func ReadCode(r io.ReaderAt, arch coredump.Arch, start, end, limit uint64) (*Code, error) {
	if end <= start {
		return nil, fmt.Errorf("insn: code at %#x: empty range (end %#x)", start, end)
	}
	if end-start > limit {
		return nil, fmt.Errorf("insn: code at %#x-%#x: %d bytes, more than the %d read at most", start, end, end-start, limit)
	}
	if start > 1<<63-1 {
		return nil, fmt.Errorf("insn: code at %#x: address beyond what a reader's offset can express", start)
	}
	b := make([]byte, end-start)
	n, err := r.ReadAt(b, int64(start))
	c := &Code{Arch: arch, PC: start, Bytes: b[:n]}
	if n < len(b) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return c, fmt.Errorf("insn: reading code at %#x-%#x: %w", start, end, err)
	}
	return c, nil
}

// Inst is one instruction of a sweep: where it is, how long it is, and the
// decoder's own form of it, for readers that follow operands Insn does not
// model (which register a load writes, an immediate).
type Inst struct {
	PC  uint64
	Len int
	// X86 is the decoded instruction on amd64.
	X86 x86asm.Inst
	// Word is the encoding on arm64, ARM64 its decoding.
	Word  uint32
	ARM64 arm64asm.Inst
}

// Next is the address of the instruction after in, what x86-64
// RIP-relative operands and branches count from.
func (in *Inst) Next() uint64 { return in.PC + uint64(in.Len) }

// endbr64 (Intel CET's indirect branch target marker, Intel SDM Vol. 2A
// "ENDBR64": F3 0F 1E FA) begins C functions built with
// -fcf-protection. x86asm takes its F3 for a lone REP prefix, leaving
// 0F 1E FA to be skipped byte by byte; a sweep steps over it whole.
var endbr64 = []byte{0xf3, 0x0f, 0x1e, 0xfa}

// decodeX86 decodes the x86-64 instruction code starts with. It is the
// only caller of x86asm.Decode: Decode and the sweep agree on what an
// instruction is.
func decodeX86(code []byte) (x86asm.Inst, error) {
	inst, err := x86asm.Decode(code, 64)
	if err == nil && inst.Len == 0 {
		err = errors.New("instruction of no length")
	}
	return inst, err
}

// Insts returns the instructions of c in order; a nil Code has none. Bytes that decode to no
// instruction (padding between functions, data, an encoding x86asm does
// not know) are passed over one byte at a time on amd64, where decoding
// resynchronises at the next instruction boundary within a few bytes, and
// one word at a time on arm64, where every instruction is one aligned
// 32-bit word (Arm ARM A64 "Instruction encoding"). The sweep ends at the
// end of c; each step advances at least one byte. Another architecture
// yields nothing.
func (c *Code) Insts() iter.Seq[Inst] {
	return func(yield func(Inst) bool) {
		if c == nil {
			return
		}
		b := c.Bytes
		switch c.Arch {
		case coredump.ArchAMD64:
			for off := 0; off < len(b); {
				if bytes.HasPrefix(b[off:], endbr64) {
					off += len(endbr64)
					continue
				}
				inst, err := decodeX86(b[off:])
				if err != nil {
					off++
					continue
				}
				if !yield(Inst{PC: c.PC + uint64(off), Len: inst.Len, X86: inst}) {
					return
				}
				off += inst.Len
			}
		case coredump.ArchARM64:
			for off := 0; off+4 <= len(b); off += 4 {
				inst, err := arm64asm.Decode(b[off : off+4])
				if err != nil {
					continue
				}
				w := binary.LittleEndian.Uint32(b[off:])
				if !yield(Inst{PC: c.PC + uint64(off), Len: 4, Word: w, ARM64: inst}) {
					return
				}
			}
		}
	}
}

// CallTarget is the target of a direct call (x86-64 CALL rel32, arm64
// BL).
func (in *Inst) CallTarget() (uint64, bool) { return in.branch(x86asm.CALL, arm64asm.BL) }

// JumpTarget is the target of a direct unconditional jump (x86-64 JMP
// rel, arm64 B).
func (in *Inst) JumpTarget() (uint64, bool) { return in.branch(x86asm.JMP, arm64asm.B) }

// branch is the target of in when it is x86 or a64 with a pc-relative
// operand: x86-64 counts from the next instruction, arm64 from the
// branch itself.
func (in *Inst) branch(x86 x86asm.Op, a64 arm64asm.Op) (uint64, bool) {
	switch {
	case in.X86.Op == x86:
		if rel, ok := in.X86.Args[0].(x86asm.Rel); ok {
			return uint64(int64(in.Next()) + int64(rel)), true
		}
	case in.ARM64.Op == a64:
		if rel, ok := in.ARM64.Args[0].(arm64asm.PCRel); ok {
			return uint64(int64(in.PC) + int64(rel)), true
		}
	}
	return 0, false
}

// RIPTarget is the address an x86-64 RIP-relative memory operand refers
// to: the next instruction's address plus the displacement (Intel SDM
// Vol. 2A §2.2.1.6, "RIP-Relative Addressing"). That form has no SIB
// byte, so no index register.
func (in *Inst) RIPTarget() (uint64, bool) {
	for _, a := range in.X86.Args {
		if a == nil {
			break
		}
		if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.RIP {
			return uint64(int64(in.Next()) + m.Disp), true
		}
	}
	return 0, false
}

// RefKind is how an instruction refers to an address.
type RefKind uint8

const (
	RefCall RefKind = iota + 1 // a direct call
	RefJump                    // a direct unconditional jump
	RefLoad                    // a load or store of pc-relative memory
	RefAddr                    // the address computed, no memory touched (lea, adrp+add)
)

// Ref is an address code refers to pc-relatively: what Go and C code use
// to call a function and to reach a global variable.
type Ref struct {
	At     uint64 // the instruction (on arm64, the ADRP)
	Target uint64
	Kind   RefKind
	// Size is the width of a RefLoad's access in bytes, 0 when the
	// decoder does not say.
	Size int
}

// adrpReach is how far after an ADRP the instruction completing its
// address is looked for: compilers put the two together, or a few
// instructions apart.
const adrpReach = 12

// Refs returns the addresses c refers to, in the order of the instructions
// that complete them: direct calls and jumps, x86-64 RIP-relative
// operands, and on arm64 an ADRP's page completed by an ADD or LDR
// (unsigned offset) based on its register within the next three
// instructions; the first such ADD ends the ADRP, loads do not.
func (c *Code) Refs() iter.Seq[Ref] {
	return func(yield func(Ref) bool) {
		var adrp []Inst // arm64: the ADRPs still within reach
		for in := range c.Insts() {
			if t, ok := in.CallTarget(); ok {
				if !yield(Ref{At: in.PC, Target: t, Kind: RefCall}) {
					return
				}
				continue
			}
			if t, ok := in.JumpTarget(); ok {
				if !yield(Ref{At: in.PC, Target: t, Kind: RefJump}) {
					return
				}
				continue
			}
			if t, ok := in.RIPTarget(); ok {
				r := Ref{At: in.PC, Target: t, Kind: RefLoad, Size: in.X86.MemBytes}
				if in.X86.Op == x86asm.LEA {
					r.Kind, r.Size = RefAddr, 0
				}
				if !yield(r) {
					return
				}
				continue
			}
			if c.Arch != coredump.ArchARM64 {
				continue
			}
			kept := adrp[:0]
			for _, a := range adrp {
				if in.PC-a.PC > adrpReach {
					continue
				}
				r, ok := adrpPair(a, in)
				if ok && !yield(r) {
					return
				}
				if ok && r.Kind == RefAddr {
					continue // the ADD is the address: this ADRP is done
				}
				kept = append(kept, a) // a page serves loads of several fields
			}
			adrp = kept
			if in.Word&a64ADRPMask == a64ADRP {
				adrp = append(adrp, in)
			}
		}
	}
}

// A64 encodings (Arm ARM, chapter C6 "A64 Base Instruction Descriptions",
// under each instruction's name).
const (
	a64ADRPMask = 0x9f000000 // ADRP: op=1, bits 28-24 = 10000
	a64ADRP     = 0x90000000
	a64ADDMask  = 0xff800000 // ADD (immediate), 64-bit, S=0; bit 22 is the shift
	a64ADD      = 0x91000000
	a64LDRMask  = 0xbfc00000 // LDR (immediate), unsigned offset, 32- and 64-bit
	a64LDR      = 0xb9400000
)

// adrpPage is the page an ADRP at pc addresses: pc with its low 12 bits
// cleared plus the signed 21-bit immhi:immlo shifted by 12.
func adrpPage(w uint32, pc uint64) uint64 {
	imm := int64((w>>29)&3|((w>>5)&0x7ffff)<<2) << 12
	return uint64(int64(pc&^0xfff) + imm<<31>>31)
}

// adrpPair reports the address the ADRP a and the instruction in after it
// compute together: ADD xd, xn, #imm12 (unshifted) or LDR [xn, #imm12 *
// size], xn being the register the ADRP wrote.
func adrpPair(a, in Inst) (Ref, bool) {
	w, rd := in.Word, a.Word&31
	if (w>>5)&31 != rd {
		return Ref{}, false
	}
	page := adrpPage(a.Word, a.PC)
	imm := uint64((w >> 10) & 0xfff)
	switch {
	case w&a64ADDMask == a64ADD && w&(1<<22) == 0:
		return Ref{At: a.PC, Target: page + imm, Kind: RefAddr}, true
	case w&a64LDRMask == a64LDR:
		size := 4 << (w >> 30 & 1) // bit 30 selects the 64-bit form
		return Ref{At: a.PC, Target: page + imm*uint64(size), Kind: RefLoad, Size: size}, true
	}
	return Ref{}, false
}
