package coredump

import (
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
)

// elfHeader is the part of an ELF64 file's header and program headers that
// identifies it, parsed from raw bytes: the kernel dumps only the first page
// of a read-only file mapping, and debug/elf insists on section headers that
// page does not hold.
type elfHeader struct {
	Type    elf.Type
	Machine elf.Machine
	Entry   uint64
	Progs   []elf.ProgHeader
}

const maxProgHeaders = 4096

func parseELFHeader(b []byte) (*elfHeader, error) {
	if len(b) < 64 || string(b[:4]) != elf.ELFMAG {
		return nil, fmt.Errorf("no ELF header")
	}
	if elf.Class(b[elf.EI_CLASS]) != elf.ELFCLASS64 || elf.Data(b[elf.EI_DATA]) != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("not a little-endian 64-bit ELF file")
	}
	h := &elfHeader{
		Type:    elf.Type(le.Uint16(b[16:])),
		Machine: elf.Machine(le.Uint16(b[18:])),
		Entry:   le.Uint64(b[24:]),
	}
	phoff := le.Uint64(b[32:])
	phentsize := uint64(le.Uint16(b[54:]))
	phnum := uint64(le.Uint16(b[56:]))
	if phnum > maxProgHeaders || (phnum > 0 && phentsize < 56) {
		return nil, fmt.Errorf("bad program header table: %d entries of %d bytes", phnum, phentsize)
	}
	for i := range phnum {
		off := phoff + i*phentsize
		if off > uint64(len(b)) || off+56 > uint64(len(b)) {
			break // program headers beyond the bytes we have
		}
		e := b[off:]
		h.Progs = append(h.Progs, elf.ProgHeader{
			Type: elf.ProgType(le.Uint32(e[0:])), Flags: elf.ProgFlag(le.Uint32(e[4:])),
			Off: le.Uint64(e[8:]), Vaddr: le.Uint64(e[16:]), Paddr: le.Uint64(e[24:]),
			Filesz: le.Uint64(e[32:]), Memsz: le.Uint64(e[40:]), Align: le.Uint64(e[48:]),
		})
	}
	return h, nil
}

// BuildIDs are the identities an ELF file carries in its notes.
type BuildIDs struct {
	GNU string // NT_GNU_BUILD_ID, hex
	Go  string // the Go toolchain's build ID (".note.go.buildid")
}

// Empty reports whether neither ID is known.
func (b BuildIDs) Empty() bool { return b.GNU == "" && b.Go == "" }

// Same reports whether b and o identify the same build, and whether they
// could be compared at all.
func (b BuildIDs) Same(o BuildIDs) (same, comparable bool) {
	if b.GNU != "" && o.GNU != "" {
		return b.GNU == o.GNU, true
	}
	if b.Go != "" && o.Go != "" {
		return b.Go == o.Go, true
	}
	return false, false
}

func (b BuildIDs) String() string {
	switch {
	case b.GNU != "":
		return b.GNU
	case b.Go != "":
		return "go:" + b.Go
	}
	return "none"
}

const (
	ntGNUBuildID = 3
	ntGoBuildID  = 4
)

// buildIDsFromNotes scans PT_NOTE segments of an ELF image for its build
// IDs. read reads bytes at a link-time virtual address (for a memory image)
// or a file offset (for a file), as useVaddr says.
func buildIDsFromNotes(h *elfHeader, r io.ReaderAt, useVaddr bool) BuildIDs {
	var ids BuildIDs
	for _, ph := range h.Progs {
		if ph.Type != elf.PT_NOTE || ph.Filesz == 0 || ph.Filesz > 1<<16 {
			continue
		}
		buf := make([]byte, ph.Filesz)
		at := ph.Off
		if useVaddr {
			at = ph.Vaddr
		}
		if _, err := r.ReadAt(buf, int64(at)); err != nil {
			continue
		}
		notes, _ := parseNotes(buf, int64(ph.Off)) // the notes before a damaged one still name the build
		for _, n := range notes {
			switch {
			case n.Name == "GNU" && n.Type == ntGNUBuildID && ids.GNU == "":
				ids.GNU = hex.EncodeToString(n.Desc)
			case n.Name == "Go" && n.Type == ntGoBuildID && ids.Go == "":
				ids.Go = string(n.Desc)
			}
		}
	}
	return ids
}
