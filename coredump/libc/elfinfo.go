package libc

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
)

// elfInfo is what this package reads from one image's ELF file: its
// symbols with binding and visibility (coredump.Image.Symbols drops both),
// its TLS segment and its dynamic relocations.
type elfInfo struct {
	im     *coredump.Image
	f      *elf.File
	err    error
	symtab []elf.Symbol // .symtab, nil when stripped
	dynsym []elf.Symbol
	tls    *elf.Prog
	interp string
	relocs []reloc
	dyn    *elf.Prog
	relErr error
}

// reloc is one Elf64_Rela entry of the dynamic relocation tables.
type reloc struct {
	Off    uint64 // link-time address of the slot
	Type   uint32
	Sym    *elf.Symbol // nil for symbol index 0
	Addend int64
}

// Relocation types this package reads (x86-64 psABI, AArch64 ELF ABI).
const (
	rX86_64GlobDat  = uint32(elf.R_X86_64_GLOB_DAT)
	rX86_64JumpSlot = uint32(elf.R_X86_64_JMP_SLOT)
	rX86_64TPOff64  = uint32(elf.R_X86_64_TPOFF64)
	rX86_64DTPMod64 = uint32(elf.R_X86_64_DTPMOD64)
	rAArch64GlobDat = uint32(elf.R_AARCH64_GLOB_DAT)
	rAArch64JumpSl  = uint32(elf.R_AARCH64_JUMP_SLOT)
	rAArch64TPRel   = uint32(elf.R_AARCH64_TLS_TPREL64)
)

// maxRelocs bounds how many relocations of one image are read.
const maxRelocs = 1 << 20

func (r *Runtime) elf(im *coredump.Image) *elfInfo {
	if ei, ok := r.elfs[im]; ok {
		return ei
	}
	ei := &elfInfo{im: im}
	r.elfs[im] = ei
	ei.f, ei.err = im.ELF()
	if ei.err != nil {
		return ei
	}
	ei.symtab, _ = ei.f.Symbols()
	ei.dynsym, _ = ei.f.DynamicSymbols()
	for _, ph := range ei.f.Progs {
		switch ph.Type {
		case elf.PT_TLS:
			ei.tls = ph
		case elf.PT_DYNAMIC:
			ei.dyn = ph
		case elf.PT_INTERP:
			if ph.Filesz > 0 && ph.Filesz < 4096 {
				b := make([]byte, ph.Filesz)
				if _, err := ph.ReadAt(b, 0); err == nil {
					ei.interp = strings.TrimRight(string(b), "\x00")
				}
			}
		}
	}
	return ei
}

// readableImages returns the images whose ELF file could be read, the
// vDSO excluded, in the process's order.
func (r *Runtime) readableImages() []*elfInfo {
	var out []*elfInfo
	for _, im := range r.Proc.Images {
		if im.Status == coredump.ImageInMemory {
			continue
		}
		if ei := r.elf(im); ei.ok() {
			out = append(out, ei)
		}
	}
	return out
}

// ok reports whether the image's file could be read.
func (ei *elfInfo) ok() bool { return ei.f != nil }

// lookup returns the first symbol called name, .dynsym first: exported
// definitions are what other objects bind to.
func (ei *elfInfo) lookup(name string) (elf.Symbol, bool) {
	for _, tab := range [][]elf.Symbol{ei.dynsym, ei.symtab} {
		for _, s := range tab {
			if s.Name == name && s.Section != elf.SHN_UNDEF {
				return s, true
			}
		}
	}
	return elf.Symbol{}, false
}

// hidden reports whether a symbol is invisible to other objects: local
// binding or hidden/internal visibility.
func hidden(s elf.Symbol) bool {
	v := elf.ST_VISIBILITY(s.Other)
	return elf.ST_BIND(s.Info) == elf.STB_LOCAL || v == elf.STV_HIDDEN || v == elf.STV_INTERNAL
}

// readRelocs reads the image's SHT_RELA sections (the dynamic relocations
// of .rela.dyn and .rela.plt).
func (ei *elfInfo) readRelocs() ([]reloc, error) {
	if ei.relocs != nil || ei.relErr != nil {
		return ei.relocs, ei.relErr
	}
	if !ei.ok() {
		ei.relErr = ei.err
		return nil, ei.err
	}
	for _, s := range ei.f.Sections {
		if s.Type != elf.SHT_RELA || s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		if s.Size/24 > maxRelocs || len(ei.relocs) > maxRelocs {
			ei.relErr = fmt.Errorf("%s: section %s holds %d relocations, more than the %d read", ei.im.Name(), s.Name, s.Size/24, maxRelocs)
			break
		}
		data, err := s.Data()
		if err != nil {
			ei.relErr = fmt.Errorf("%s: %s: %w", ei.im.Name(), s.Name, err)
			break
		}
		// Relocations of .dynsym when the section links to it; a static
		// executable's IRELATIVE/TPOFF entries carry no symbol.
		var syms []elf.Symbol
		if int(s.Link) < len(ei.f.Sections) && ei.f.Sections[s.Link].Type == elf.SHT_DYNSYM {
			syms = ei.dynsym
		}
		for i := 0; i+24 <= len(data); i += 24 {
			info := binary.LittleEndian.Uint64(data[i+8:])
			rl := reloc{
				Off:    binary.LittleEndian.Uint64(data[i:]),
				Type:   uint32(info),
				Addend: int64(binary.LittleEndian.Uint64(data[i+16:])),
			}
			// debug/elf drops the null symbol, so index n is syms[n-1].
			if si := int(info >> 32); si > 0 && si <= len(syms) {
				rl.Sym = &syms[si-1]
			}
			ei.relocs = append(ei.relocs, rl)
		}
	}
	if ei.relocs == nil && ei.relErr == nil {
		ei.relocs = []reloc{}
	}
	return ei.relocs, ei.relErr
}

// relocAt returns the relocation of the slot at link-time address off.
func (ei *elfInfo) relocAt(off uint64) (reloc, bool) {
	rs, _ := ei.readRelocs()
	for _, r := range rs {
		if r.Off == off {
			return r, true
		}
	}
	return reloc{}, false
}

// isTPOff reports whether t is a relocation that stores a TLS symbol's
// offset from the thread pointer (initial-exec TLS).
func isTPOff(t uint32, arch coredump.Arch) bool {
	if arch == coredump.ArchARM64 {
		return t == rAArch64TPRel
	}
	return t == rX86_64TPOff64
}

// isSymbolSlot reports whether t is a relocation that stores a resolved
// symbol's address (GOT entry or PLT slot).
func isSymbolSlot(t uint32, arch coredump.Arch) bool {
	if arch == coredump.ArchARM64 {
		return t == rAArch64GlobDat || t == rAArch64JumpSl
	}
	return t == rX86_64GlobDat || t == rX86_64JumpSlot
}

// fileBytes returns n bytes at link-time address vaddr from the image's
// file (the code and read-only data a core does not hold).
func (ei *elfInfo) fileBytes(vaddr uint64, n int) ([]byte, error) {
	if !ei.ok() {
		return nil, ei.err
	}
	for _, ph := range ei.f.Progs {
		if ph.Type != elf.PT_LOAD || vaddr < ph.Vaddr || vaddr+uint64(n) > ph.Vaddr+ph.Filesz {
			continue
		}
		b := make([]byte, n)
		if _, err := ph.ReadAt(b, int64(vaddr-ph.Vaddr)); err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("%s: no file bytes at %#x", ei.im.Name(), vaddr)
}
