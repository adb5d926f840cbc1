package libc

import (
	"debug/gosym"
	"errors"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

// goFunc names a Go function: stripped binaries (-ldflags=-s -w) keep
// .gopclntab when .symtab is gone, and the crash-path frames this package
// looks for are Go functions. The Go runtime layer's pclntab reader
// answers when it loads; it needs the runtime's struct layouts, which a
// stripped binary of a Go version without a built-in table lacks, and then
// the standard library's debug/gosym reads the same table.
func (r *Runtime) goFunc(im *coredump.Image, pc uint64) (name string, entry uint64, ok bool) {
	if im == nil || !im.IsExe {
		return "", 0, false
	}
	if gr, err := goruntime.Load(r.Proc); err == nil && gr.Funcs != nil {
		if f, ok := gr.Funcs.FuncAt(pc); ok {
			return f.Name(), f.Entry, true
		}
		return "", 0, false
	}
	if r.gofuncs == nil {
		r.gofuncs = &goFuncs{}
		sec, data, err := im.Section(".gopclntab")
		if err == nil && len(data) >= 32 {
			// Go 1.18+ pclntab headers hold runtime.text at offset 24
			// (runtime/symtab.go pcHeader.textStart): the start of Go's
			// code, which in an externally linked binary is not the
			// start of .text. The loaded copy is relocated (PIE).
			text, err := r.Proc.ReadUint64(sec.Addr + im.Bias + 24)
			if err != nil || text == 0 {
				text = r.moduleText(im, sec.Addr+im.Bias)
			}
			if tab, err := safeGoTable(data, text); err == nil && text != 0 {
				r.gofuncs.tab = tab
			}
		}
	}
	if r.gofuncs.tab == nil {
		return "", 0, false
	}
	f := r.gofuncs.tab.PCToFunc(pc)
	if f == nil {
		return "", 0, false
	}
	return f.Name, f.Entry, true
}

// goFuncs is debug/gosym's view of .gopclntab.
type goFuncs struct {
	tab *gosym.Table
}

var errMalformedPclntab = errors.New("malformed .gopclntab")

// safeGoTable is gosym.NewTable with a panic on malformed data turned into
// an error.
func safeGoTable(pclntab []byte, text uint64) (t *gosym.Table, err error) {
	defer func() {
		if e := recover(); e != nil {
			t, err = nil, errMalformedPclntab
		}
	}()
	return gosym.NewTable(nil, gosym.NewLineTable(pclntab, text))
}

// moduleText finds runtime.text when the pclntab header does not hold it
// (an externally linked binary leaves the field 0): runtime.firstmoduledata
// begins with a pointer to the pclntab header, and its minpc (word 20:
// after funcnametab, cutab, filetab, pctab, pclntable and ftab slices and
// findfunctab, runtime/symtab.go moduledata) is runtime.text.
func (r *Runtime) moduleText(im *coredump.Image, pclntab uint64) uint64 {
	for _, name := range []string{".go.module", ".noptrdata", ".data"} { // Go 1.26 moved it to .go.module
		sec, data, err := im.Section(name)
		if err != nil {
			continue
		}
		for off := 0; off+22*8 <= len(data); off += 8 {
			if le.Uint64(data[off:])+im.Bias != pclntab && le.Uint64(data[off:]) != pclntab {
				continue
			}
			// Read the live copy: it is relocated in a PIE binary.
			at := sec.Addr + im.Bias + uint64(off)
			minpc, err1 := r.Proc.ReadUint64(at + 20*8)
			maxpc, err2 := r.Proc.ReadUint64(at + 21*8)
			if err1 == nil && err2 == nil && minpc < maxpc && im.Contains(minpc) && im.Contains(maxpc-1) {
				return minpc
			}
		}
	}
	return 0
}
