package coredump

import (
	"debug/elf"
	"debug/gosym"
	"errors"
	"fmt"
)

// A Go binary linked with -s has no .symtab, but its .gopclntab (which the
// runtime itself needs for tracebacks) names every function. goFuncSymbols
// turns it into symbols, so that a stripped Go executable's pcs still get
// function names.

// ModuledataTextOffset is the offset of runtime.moduledata's text field in
// Go 1.20 through 1.26: goruntime's moduledataPrefix["text"], which
// goruntime's TestVersionTables checks against each release's DWARF and
// against this constant.
const ModuledataTextOffset = 176

// GoTextStart returns the address function entries in a Go binary's
// .gopclntab are relative to: runtime.text. It is .text's start in
// internally linked binaries but follows the C start-up code in externally
// linked ones. Go 1.18-1.25 record it in the pcHeader; Go 1.26 leaves it
// zero there, so it is read from runtime.firstmoduledata (field at
// textOff), found as the data word that points at the pcHeader.
func GoTextStart(f *elf.File, textOff int64) (uint64, error) {
	pclnSec := f.Section(".gopclntab")
	if pclnSec == nil {
		return 0, errors.New("no .gopclntab")
	}
	var head [40]byte
	if _, err := pclnSec.ReadAt(head[:], 0); err != nil {
		return 0, fmt.Errorf(".gopclntab: %w", err)
	}
	if magic := le.Uint32(head[:]); magic != 0xfffffff0 && magic != 0xfffffff1 {
		return 0, fmt.Errorf(".gopclntab magic %#x is not Go 1.18 or later", magic)
	}
	if ts := le.Uint64(head[24:]); ts != 0 {
		return ts, nil
	}
	text := f.Section(".text")
	if text == nil {
		return 0, errors.New("no .text section")
	}
	funcnameOff := le.Uint64(head[32:])
	// Go 1.26 gives moduledata a section of its own (.go.module); before,
	// it sits in .noptrdata; external linkers may merge either.
	for _, sec := range f.Sections {
		if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_ALLOC == 0 || sec.Flags&elf.SHF_WRITE == 0 || sec.Size > 1<<28 {
			continue
		}
		b, err := sec.Data()
		if err != nil {
			continue
		}
		for off := 0; off+int(textOff)+8 <= len(b); off += 8 {
			if le.Uint64(b[off:]) != pclnSec.Addr || le.Uint64(b[off+8:]) != pclnSec.Addr+funcnameOff {
				continue
			}
			if t := le.Uint64(b[off+int(textOff):]); t >= text.Addr && t < text.Addr+text.Size {
				return t, nil
			}
		}
	}
	return 0, errors.New("runtime.firstmoduledata not found in the data sections")
}

// GoFuncTable parses a Go binary's .gopclntab.
func GoFuncTable(f *elf.File, textOff int64) (t *gosym.Table, err error) {
	start, err := GoTextStart(f, textOff)
	if err != nil {
		return nil, err
	}
	pcln, err := f.Section(".gopclntab").Data()
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("malformed .gopclntab: %v", r)
		}
	}()
	return gosym.NewTable(nil, gosym.NewLineTable(pcln, start))
}

// goFuncSymbols returns the functions .gopclntab names, for an image
// without a symbol table.
func (im *Image) goFuncSymbols(f *elf.File) []elf.Symbol {
	if f.Section(".symtab") != nil || f.Section(".gopclntab") == nil {
		return nil
	}
	tab, err := GoFuncTable(f, ModuledataTextOffset)
	if err != nil {
		return nil
	}
	out := make([]elf.Symbol, 0, len(tab.Funcs))
	for _, fn := range tab.Funcs {
		if fn.End <= fn.Entry {
			continue
		}
		out = append(out, elf.Symbol{Name: fn.Name, Value: fn.Entry, Size: fn.End - fn.Entry,
			Info: elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC), Section: elf.SHN_ABS})
	}
	return out
}
