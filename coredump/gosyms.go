package coredump

import (
	"debug/elf"

	"github.com/coreexplain/coreexplain/coredump/gobin"
)

// A Go binary linked with -s has no .symtab, but its .gopclntab (which the
// runtime itself needs for tracebacks) names every function. goFuncSymbols
// turns it into symbols, so that a stripped Go executable's pcs still get
// function names.

// goFuncSymbols returns the functions .gopclntab names, for an image
// without a symbol table. A table that does not parse gives none: the
// Go runtime layer reads the same table and reports why.
func (im *Image) goFuncSymbols(f *elf.File) []elf.Symbol {
	if f.Section(".symtab") != nil || f.Section(".gopclntab") == nil {
		return nil
	}
	tab, err := gobin.OpenELF(f)
	if err != nil {
		return nil
	}
	out := make([]elf.Symbol, 0, tab.NumFuncs())
	tab.Funcs(func(fn gobin.Func) bool {
		if end := fn.End(); end > fn.Entry {
			out = append(out, elf.Symbol{Name: fn.Name(), Value: fn.Entry, Size: end - fn.Entry,
				Info: elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC), Section: elf.SHN_ABS})
		}
		return true
	})
	return out
}
