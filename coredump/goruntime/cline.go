package goruntime

import (
	"debug/dwarf"
	"sort"
	"sync"
)

// cLineTable maps pcs of the executable's own C code (the cgo preamble
// and the C files of the package, compiled with -g) to source lines and
// function names, from the executable's DWARF. Go code uses the pclntab.
type cLineTable struct {
	rows  []cLineRow // sorted by pc
	funcs []cFunc    // sorted by lo
	bias  uint64
}

type cLineRow struct {
	pc   uint64 // link-time address
	end  bool   // end of a sequence
	file string
	line int
}

type cFunc struct {
	lo, hi uint64
	name   string
}

var cLinesMu sync.Mutex

// cLines builds the table on first use; nil when the executable has no
// DWARF for C code.
func (r *Runtime) cLines() *cLineTable {
	cLinesMu.Lock()
	defer cLinesMu.Unlock()
	if r.clines != nil || r.clinesDone {
		return r.clines
	}
	r.clinesDone = true
	f, err := r.Binary.Image.ELF()
	if err != nil {
		return nil
	}
	d, err := f.DWARF()
	if err != nil {
		return nil
	}
	t := &cLineTable{bias: r.Binary.Image.Bias}
	rd := d.Reader()
	for {
		e, err := rd.Next()
		if err != nil || e == nil {
			break
		}
		if e.Tag != dwarf.TagCompileUnit {
			rd.SkipChildren()
			continue
		}
		lang, _ := e.Val(dwarf.AttrLanguage).(int64)
		if lang == 0x16 { // DW_LANG_Go
			rd.SkipChildren()
			continue
		}
		if lr, err := d.LineReader(e); err == nil && lr != nil {
			var le dwarf.LineEntry
			for lr.Next(&le) == nil {
				file := ""
				if le.File != nil {
					file = le.File.Name
				}
				t.rows = append(t.rows, cLineRow{pc: le.Address, end: le.EndSequence, file: file, line: le.Line})
			}
		}
		// Function names for C code without symbols (static functions in
		// a stripped executable).
		for {
			c, err := rd.Next()
			if err != nil || c == nil || c.Tag == 0 {
				break
			}
			if c.Tag == dwarf.TagSubprogram {
				name, _ := c.Val(dwarf.AttrName).(string)
				if rs, err := d.Ranges(c); err == nil && name != "" {
					for _, rg := range rs {
						t.funcs = append(t.funcs, cFunc{lo: rg[0], hi: rg[1], name: name})
					}
				}
			}
			if c.Children {
				rd.SkipChildren()
			}
		}
	}
	sort.SliceStable(t.rows, func(i, j int) bool { return t.rows[i].pc < t.rows[j].pc })
	sort.Slice(t.funcs, func(i, j int) bool { return t.funcs[i].lo < t.funcs[j].lo })
	if len(t.rows) == 0 {
		return nil
	}
	r.clines = t
	return t
}

// lookup returns the source position and function of run-time pc.
func (t *cLineTable) lookup(pc uint64) (file string, line int, fn string, ok bool) {
	if t == nil {
		return "", 0, "", false
	}
	lpc := pc - t.bias
	i := sort.Search(len(t.rows), func(i int) bool { return t.rows[i].pc > lpc }) - 1
	if i < 0 || t.rows[i].end {
		return "", 0, "", false
	}
	j := sort.Search(len(t.funcs), func(i int) bool { return t.funcs[i].lo > lpc }) - 1
	if j >= 0 && lpc < t.funcs[j].hi {
		fn = t.funcs[j].name
	}
	return t.rows[i].file, t.rows[i].line, fn, true
}
