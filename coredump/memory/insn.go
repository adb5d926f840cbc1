package memory

import (
	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/insn"
)

// The instruction model lives in package insn, below goruntime and libc,
// which decode code too. These names stay for the code that still spells
// them memory.X: Fault.Access returns an Access, and the fault rules
// (diagnose/rules_fault.go) use the rest.

// Access is the kind of memory access an instruction made.
type Access = insn.Access

const (
	AccessUnknown = insn.AccessUnknown
	AccessRead    = insn.AccessRead
	AccessWrite   = insn.AccessWrite
	AccessExecute = insn.AccessExecute
)

// Insn is one decoded machine instruction.
type Insn = insn.Insn

// Decode decodes one instruction of arch from code at pc.
func Decode(arch coredump.Arch, code []byte, pc uint64) (*Insn, error) {
	return insn.Decode(arch, code, pc)
}

// RegValue returns register name's value from regs.
func RegValue(regs *coredump.Registers, name string) (uint64, bool) {
	return insn.RegValue(regs, name)
}
