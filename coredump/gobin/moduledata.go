package gobin

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
)

// Offsets of the runtime.moduledata fields this package reads, on 64-bit
// targets: the same from Go 1.20 to 1.26 (runtime/symtab.go; the Go
// runtime layer's tests check them against each release's DWARF).
const (
	ModuledataPcHeaderOffset    = 0
	ModuledataFuncnametabOffset = 8
	ModuledataTextOffset        = 176
	ModuledataEtextOffset       = 184
)

// Range is an address range [Start, End) to search.
type Range struct{ Start, End uint64 }

// IsModuledata reports whether mem holds, at addr, the start of the
// runtime.moduledata of the pclntab whose header h is at address pcHeader:
// the pointer to the header, then the funcnametab slice, which points
// into the section and is no longer than its table. mem is an address
// space: its offsets are addresses.
func IsModuledata(mem io.ReaderAt, addr, pcHeader uint64, h *Header) bool {
	var b [24]byte
	if _, err := mem.ReadAt(b[:], int64(addr)); err != nil {
		return false
	}
	return le.Uint64(b[ModuledataPcHeaderOffset:]) == pcHeader &&
		le.Uint64(b[ModuledataFuncnametabOffset:]) == pcHeader+h.FuncnameOff &&
		le.Uint64(b[ModuledataFuncnametabOffset+8:]) <= h.CuOff-h.FuncnameOff
}

// scanChunk is how much of a range FindModuledata reads at a time: the
// ranges are the binary's writable data, which can be large.
const scanChunk = 64 << 10

// FindModuledata returns the address of runtime.firstmoduledata: the first
// 8-aligned word in ranges, searched in order, that starts a moduledata
// for the pclntab at pcHeader (IsModuledata). The runtime points no other
// word of its data at the pcHeader, and moduledata sits in the binary's
// writable data (.noptrdata before Go 1.26, .go.module from it on).
func FindModuledata(mem io.ReaderAt, ranges []Range, pcHeader uint64, h *Header) (uint64, error) {
	buf := make([]byte, scanChunk)
	for _, r := range ranges {
		for a := (r.Start + 7) &^ 7; a+8 <= r.End && a >= r.Start; a += scanChunk {
			n := min(uint64(scanChunk), r.End-a)
			got, _ := mem.ReadAt(buf[:n], int64(a))
			for i := 0; i+8 <= got; i += 8 {
				if le.Uint64(buf[i:]) == pcHeader && IsModuledata(mem, a+uint64(i), pcHeader, h) {
					return a + uint64(i), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no pointer to the pcHeader at %#x in the writable data", pcHeader)
}

// moduleText reads runtime.text and runtime.etext from the moduledata at
// md.
func moduleText(mem io.ReaderAt, md uint64) (text, etext uint64, err error) {
	var b [16]byte
	if _, err := mem.ReadAt(b[:], int64(md+ModuledataTextOffset)); err != nil {
		return 0, 0, fmt.Errorf("moduledata at %#x: %w", md, err)
	}
	text, etext = le.Uint64(b[:]), le.Uint64(b[8:])
	if text == 0 || etext <= text {
		return 0, 0, fmt.Errorf("moduledata at %#x has text %#x-%#x", md, text, etext)
	}
	return text, etext, nil
}

// elfMemory reads an ELF file's allocated sections by link-time address.
type elfMemory struct{ f *elf.File }

func (m elfMemory) ReadAt(b []byte, addr int64) (int, error) {
	a := uint64(addr)
	for _, s := range m.f.Sections {
		if s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_ALLOC == 0 || a < s.Addr || a >= s.Addr+s.Size {
			continue
		}
		n := len(b)
		if rest := s.Addr + s.Size - a; uint64(n) > rest {
			n = int(rest)
		}
		got, err := s.ReadAt(b[:n], int64(a-s.Addr))
		if err == nil && got < len(b) {
			err = io.ErrUnexpectedEOF
		}
		return got, err
	}
	return 0, fmt.Errorf("address %#x is in no section of the file", a)
}

// maxSectionScan bounds the data sections OpenELF searches for the
// moduledata: it sits in a small one, and a huge one is not worth reading.
const maxSectionScan = 1 << 28

// OpenELF parses the .gopclntab of a Go executable at link-time addresses,
// for readers that have the file but no process (no funcdata then).
// runtime.text is recorded in the pcHeader before Go 1.26; from 1.26 on it
// is read from runtime.firstmoduledata, found in the file's writable data
// as the word that points at the pcHeader. It is .text's start in
// internally linked binaries but follows the C start-up code in
// externally linked ones.
func OpenELF(f *elf.File) (*Table, error) {
	sec := f.Section(".gopclntab")
	if sec == nil {
		return nil, errors.New("no .gopclntab section")
	}
	if sec.Type == elf.SHT_NOBITS || sec.Size > 1<<31 {
		return nil, fmt.Errorf(".gopclntab: %d bytes of type %s: not a table", sec.Size, sec.Type)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".gopclntab: %w", err)
	}
	h, err := ParseHeader(data)
	if err != nil {
		return nil, err
	}
	text := h.TextStart
	if text == 0 {
		if text, err = elfModuleText(f, sec.Addr, h); err != nil {
			return nil, err
		}
	}
	return NewTable(data, text, nil)
}

// elfModuleText reads runtime.text from the moduledata in the file.
func elfModuleText(f *elf.File, pcHeader uint64, h *Header) (uint64, error) {
	text := f.Section(".text")
	if text == nil {
		return 0, errors.New("no .text section")
	}
	// Go 1.26 gives moduledata a section of its own (.go.module); before,
	// it sits in .noptrdata; external linkers may merge either.
	var ranges []Range
	for _, s := range f.Sections {
		if s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_ALLOC != 0 && s.Flags&elf.SHF_WRITE != 0 && s.Size <= maxSectionScan {
			ranges = append(ranges, Range{s.Addr, s.Addr + s.Size})
		}
	}
	mem := elfMemory{f}
	md, err := FindModuledata(mem, ranges, pcHeader, h)
	if err != nil {
		return 0, fmt.Errorf("runtime.firstmoduledata: %w", err)
	}
	t, _, err := moduleText(mem, md)
	if err != nil {
		return 0, err
	}
	if t < text.Addr || t >= text.Addr+text.Size {
		return 0, fmt.Errorf("moduledata at %#x: text %#x outside .text", md, t)
	}
	return t, nil
}
