package coredump

import (
	"debug/elf"
	"fmt"
)

// Arch is a target machine architecture.
type Arch uint8

const (
	ArchUnknown Arch = iota
	ArchAMD64
	ArchARM64
)

var archNames = [...]string{ArchUnknown: "unknown", ArchAMD64: "amd64", ArchARM64: "arm64"}

func (a Arch) String() string {
	if int(a) < len(archNames) {
		return archNames[a]
	}
	return fmt.Sprintf("Arch(%d)", uint8(a))
}

// PtrSize is the size of a pointer in bytes.
func (a Arch) PtrSize() int { return 8 }

// Machine is the ELF machine of the architecture.
func (a Arch) Machine() elf.Machine {
	switch a {
	case ArchAMD64:
		return elf.EM_X86_64
	case ArchARM64:
		return elf.EM_AARCH64
	}
	return elf.EM_NONE
}

func archOf(m elf.Machine) Arch {
	switch m {
	case elf.EM_X86_64:
		return ArchAMD64
	case elf.EM_AARCH64:
		return ArchARM64
	}
	return ArchUnknown
}

// Register names in the order of the kernel's user_regs_struct (amd64) and
// user_pt_regs (arm64), which is the order of NT_PRSTATUS pr_reg.
var amd64RegNames = []string{
	"r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
	"rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
	"rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
}

var arm64RegNames = func() []string {
	n := make([]string, 0, 34)
	for i := 0; i <= 30; i++ {
		n = append(n, fmt.Sprintf("x%d", i))
	}
	return append(n, "sp", "pc", "pstate")
}()

// Indexes into Registers for the registers the analysis needs by role.
const (
	amd64RBP    = 4
	amd64RIP    = 16
	amd64RSP    = 19
	amd64FSBase = 21
	arm64FP     = 29
	arm64SP     = 31
	arm64PC     = 32
)

// DWARF register numbers (System V psABI) of the amd64 registers, by index
// into amd64RegNames; -1 where DWARF has no number.
var amd64DwarfNum = []int{
	15, 14, 13, 12, 6, 3, 11, 10, 9, 8,
	0, 2, 1, 4, 5, -1, 16, -1, 49,
	7, -1, 58, 59, -1, -1, -1, -1,
}

// Registers is one thread's general-purpose register file.
type Registers struct {
	Arch   Arch
	Values []uint64 // in the order of the kernel's register struct
	TP     uint64   // thread pointer: fs_base (amd64), tpidr_el0 (arm64)
}

// Names returns the register names in the order of Values.
func (r *Registers) Names() []string {
	switch r.Arch {
	case ArchAMD64:
		return amd64RegNames
	case ArchARM64:
		return arm64RegNames
	}
	return nil
}

func (r *Registers) at(i int) uint64 {
	if i < len(r.Values) {
		return r.Values[i]
	}
	return 0
}

// PC is the program counter.
func (r *Registers) PC() uint64 {
	if r.Arch == ArchARM64 {
		return r.at(arm64PC)
	}
	return r.at(amd64RIP)
}

// SP is the stack pointer.
func (r *Registers) SP() uint64 {
	if r.Arch == ArchARM64 {
		return r.at(arm64SP)
	}
	return r.at(amd64RSP)
}

// FP is the frame pointer (rbp, x29).
func (r *Registers) FP() uint64 {
	if r.Arch == ArchARM64 {
		return r.at(arm64FP)
	}
	return r.at(amd64RBP)
}

// Get returns the register called name.
func (r *Registers) Get(name string) (uint64, bool) {
	for i, n := range r.Names() {
		if n == name && i < len(r.Values) {
			return r.Values[i], true
		}
	}
	if name == "tp" {
		return r.TP, true
	}
	return 0, false
}

// DwarfRegs returns the registers keyed by DWARF register number, the form
// call frame information (CFI) is written in.
func (r *Registers) DwarfRegs() map[int]uint64 {
	m := make(map[int]uint64, len(r.Values))
	switch r.Arch {
	case ArchAMD64:
		for i, v := range r.Values {
			if i < len(amd64DwarfNum) && amd64DwarfNum[i] >= 0 {
				m[amd64DwarfNum[i]] = v
			}
		}
	case ArchARM64:
		for i, v := range r.Values {
			if i <= arm64PC { // x0..x30 = 0..30, sp = 31, pc = 32
				m[i] = v
			}
		}
	}
	return m
}

// DWARF register numbers of the registers unwinding needs by role.
func (a Arch) dwarfPC() int {
	if a == ArchARM64 {
		return 32
	}
	return 16
}

func (a Arch) dwarfSP() int {
	if a == ArchARM64 {
		return 31
	}
	return 7
}

func (a Arch) dwarfFP() int {
	if a == ArchARM64 {
		return 29
	}
	return 6
}
