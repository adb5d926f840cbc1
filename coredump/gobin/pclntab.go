package gobin

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

var le = binary.LittleEndian

// Magic numbers of the pclntab formats read here (runtime/symtab.go;
// internal/abi.PCLnTabMagic is the current one).
const (
	Go118Magic = 0xfffffff0 // Go 1.18, 1.19
	Go120Magic = 0xfffffff1 // Go 1.20 and later
)

// HeaderSize is the size of runtime.pcHeader in a 64-bit binary: 8 bytes
// of magic, pad, quantum and pointer size, then eight words.
const HeaderSize = 8 + 8*8

// Indexes of the pcdata and funcdata tables Logical reads (internal/abi:
// PCDATA_InlTreeIndex, FUNCDATA_InlTree; unchanged since Go 1.12).
const (
	pcdataInlTreeIndex = 2
	funcdataInlTree    = 3
)

// inlinedCallSize is the size of one runtime.inlinedCall from Go 1.20 on
// (funcID, pad, nameOff, parentPc, startLine).
const inlinedCallSize = 16

// FormatError is a table that breaks the format: what is wrong and at
// which offset of the section.
type FormatError struct {
	Off uint64 // offset in .gopclntab
	Msg string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf(".gopclntab: %s (at offset %#x)", e.Msg, e.Off)
}

func formatError(off uint64, format string, args ...any) error {
	return &FormatError{Off: off, Msg: fmt.Sprintf(format, args...)}
}

// Header is runtime.pcHeader, the start of the section.
type Header struct {
	Magic   uint32
	Quantum uint8 // minLC: the pc unit of the pc-value tables
	PtrSize uint8
	NFunc   uint64 // functions in the ftab
	NFiles  uint64 // file names in the filetab
	// TextStart is runtime.text at link time; zero from Go 1.26 on.
	TextStart uint64
	// Offsets of the tables from the start of the section.
	FuncnameOff, CuOff, FiletabOff, PctabOff, PclnOff uint64
}

// ParseHeader reads and checks the header of a .gopclntab: every count
// and offset is checked against len(data), so that nothing sized by the
// header can reach past the section or be allocated from a bogus count.
func ParseHeader(data []byte) (*Header, error) {
	if len(data) < 8 {
		return nil, formatError(0, "%d bytes: too short for a header", len(data))
	}
	h := &Header{Magic: le.Uint32(data), Quantum: data[6], PtrSize: data[7]}
	switch h.Magic {
	case Go118Magic, Go120Magic:
	default:
		return nil, formatError(0, "magic %#x: only the Go 1.18+ formats are supported", h.Magic)
	}
	if h.PtrSize != 8 || data[4] != 0 || data[5] != 0 || (h.Quantum != 1 && h.Quantum != 4) {
		return nil, formatError(4, "pointer size %d, quantum %d: not a 64-bit table", h.PtrSize, h.Quantum)
	}
	if len(data) < HeaderSize {
		return nil, formatError(8, "header truncated: %d bytes", len(data))
	}
	w := func(i int) uint64 { return le.Uint64(data[8+8*i:]) }
	h.NFunc, h.NFiles, h.TextStart = w(0), w(1), w(2)
	h.FuncnameOff, h.CuOff, h.FiletabOff, h.PctabOff, h.PclnOff = w(3), w(4), w(5), w(6), w(7)
	n := uint64(len(data))
	for i, o := range []uint64{h.FuncnameOff, h.CuOff, h.FiletabOff, h.PctabOff, h.PclnOff} {
		if o < HeaderSize || o > n {
			return nil, formatError(8+8*uint64(3+i), "table offset %#x outside the %#x-byte section", o, n)
		}
	}
	if !(h.FuncnameOff <= h.CuOff && h.CuOff <= h.FiletabOff && h.FiletabOff <= h.PctabOff && h.PctabOff <= h.PclnOff) {
		return nil, formatError(8+8*3, "table offsets %#x, %#x, %#x, %#x, %#x out of order",
			h.FuncnameOff, h.CuOff, h.FiletabOff, h.PctabOff, h.PclnOff)
	}
	// The ftab holds nfunc+1 8-byte entries at the start of pclntable.
	if h.NFunc == 0 || h.NFunc >= (n-h.PclnOff)/8 {
		return nil, formatError(8, "nfunc %d does not fit: the %d bytes of pclntable hold at most %d functions", h.NFunc, n-h.PclnOff, max((n-h.PclnOff)/8, 1)-1)
	}
	// Every file name takes at least its NUL.
	if h.NFiles > h.PctabOff-h.FiletabOff {
		return nil, formatError(16, "nfiles %d: more files than the %d bytes of filetab hold", h.NFiles, h.PctabOff-h.FiletabOff)
	}
	return h, nil
}

// Table is a parsed .gopclntab. Lookups do not allocate: names are strings
// that share the section's bytes, which must not change.
type Table struct {
	Header

	funcnametab, cutab, filetab, pctab, pclntable, ftab []byte
	nfunc                                               int
	quantum                                             uint64

	// Offsets in a _func record of the fields Go 1.20 moved.
	funcIDOff, flagOff, nfuncdataOff, funcSize uint32

	// text is runtime.text, which entry offsets are relative to; MinPC
	// and MaxPC bound the functions' code.
	text         uint64
	MinPC, MaxPC uint64

	// gofunc holds the static data funcdata offsets are relative to
	// (moduledata.gofunc), from its start to the end of its section.
	gofunc []byte

	byName map[string]int
}

// NewTable parses the bytes of a .gopclntab. text is runtime.text in the
// address space the caller works in (link-time, or run-time for a
// relocated executable); gofunc the bytes at moduledata.gofunc, or nil
// when unknown (then no funcdata: no inline trees, no argument maps).
func NewTable(data []byte, text uint64, gofunc []byte) (*Table, error) {
	h, err := ParseHeader(data)
	if err != nil {
		return nil, err
	}
	t := &Table{
		Header:       *h,
		funcnametab:  data[h.FuncnameOff:h.CuOff],
		cutab:        data[h.CuOff:h.FiletabOff],
		filetab:      data[h.FiletabOff:h.PctabOff],
		pctab:        data[h.PctabOff:h.PclnOff],
		pclntable:    data[h.PclnOff:],
		nfunc:        int(h.NFunc),
		quantum:      uint64(h.Quantum),
		funcIDOff:    40,
		flagOff:      41,
		nfuncdataOff: 43,
		funcSize:     44,
		text:         text,
		gofunc:       gofunc,
	}
	if h.Magic == Go118Magic {
		t.funcIDOff, t.flagOff, t.nfuncdataOff, t.funcSize = 36, 37, 39, 40
	}
	t.ftab = t.pclntable[:(t.nfunc+1)*8]
	// Entries must ascend and every record must lie in pclntable, so that
	// the binary search and the field readers need no further checks.
	prev := uint32(0)
	for i := 0; i <= t.nfunc; i++ {
		e := le.Uint32(t.ftab[8*i:])
		if e < prev {
			return nil, formatError(h.PclnOff+8*uint64(i), "function %d entry %#x below the previous one (%#x)", i, e, prev)
		}
		prev = e
		if i < t.nfunc {
			fo := le.Uint32(t.ftab[8*i+4:])
			if uint64(fo)+uint64(t.funcSize) > uint64(len(t.pclntable)) {
				return nil, formatError(h.PclnOff+8*uint64(i)+4, "function %d record at %#x outside pclntable (%#x bytes)", i, fo, len(t.pclntable))
			}
		}
	}
	t.MinPC = text + uint64(le.Uint32(t.ftab[0:]))
	t.MaxPC = text + uint64(prev)
	return t, nil
}

// NumFuncs is the number of functions in the table.
func (t *Table) NumFuncs() int { return t.nfunc }

func (t *Table) entryOff(i int) uint32 { return le.Uint32(t.ftab[8*i:]) }

// funcIndex returns the function at index i (0 <= i < NumFuncs), in
// address order.
func (t *Table) funcIndex(i int) Func {
	return Func{t: t, off: le.Uint32(t.ftab[8*i+4:]), Entry: t.text + uint64(t.entryOff(i)), idx: i}
}

// FuncAt returns the function whose code contains pc.
func (t *Table) FuncAt(pc uint64) (Func, bool) {
	if t == nil || pc < t.MinPC || pc >= t.MaxPC {
		return Func{}, false
	}
	off := uint32(pc - t.text)
	// The last i with entryOff(i) <= off.
	lo, hi := 0, t.nfunc
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.entryOff(m) <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return Func{}, false
	}
	return t.funcIndex(lo - 1), true
}

// FuncByName returns the function called name (the first, if the name is
// not unique). The first call indexes every name.
func (t *Table) FuncByName(name string) (Func, bool) {
	if t.byName == nil {
		t.byName = make(map[string]int, t.nfunc)
		for i := t.nfunc - 1; i >= 0; i-- {
			t.byName[t.funcIndex(i).Name()] = i
		}
	}
	i, ok := t.byName[name]
	if !ok {
		return Func{}, false
	}
	return t.funcIndex(i), true
}

// Funcs calls fn for every function in address order until fn returns
// false.
func (t *Table) Funcs(fn func(Func) bool) {
	for i := 0; i < t.nfunc; i++ {
		if !fn(t.funcIndex(i)) {
			return
		}
	}
}

// Func is one function of the table.
type Func struct {
	t   *Table
	off uint32 // offset of the _func record in pclntable
	// Entry is the address of the first instruction.
	Entry uint64
	idx   int
}

// Valid reports whether f names a function.
func (f Func) Valid() bool { return f.t != nil }

// u32 and u8 read fields of the _func record; past the end of pclntable
// they read zero (NewTable checked the fixed part; the pcdata and
// funcdata offsets after it are counted by the record itself).
func (f Func) u32(off uint32) uint32 { return u32(f.t.pclntable, uint64(f.off)+uint64(off)) }

func (f Func) u8(off uint32) uint8 {
	if o := uint64(f.off) + uint64(off); o < uint64(len(f.t.pclntable)) {
		return f.t.pclntable[o]
	}
	return 0
}

func u32(b []byte, off uint64) uint32 {
	if off+4 > uint64(len(b)) {
		return 0
	}
	return le.Uint32(b[off:])
}

// End is the address after the function's last instruction.
func (f Func) End() uint64 {
	if f.idx+1 > f.t.nfunc {
		return f.Entry
	}
	return f.t.text + uint64(f.t.entryOff(f.idx+1))
}

// Name is the function's symbol name, e.g. "main.(*Server).maxIdle".
func (f Func) Name() string { return cstring(f.t.funcnametab, int32(f.u32(4))) }

// Args is the size of the function's arguments and results in bytes.
func (f Func) Args() int32 { return int32(f.u32(8)) }

// StartLine is the line of the func keyword (or TEXT directive); 0 before
// Go 1.20, whose records do not hold it.
func (f Func) StartLine() int32 {
	if f.t.Magic == Go118Magic {
		return 0
	}
	return int32(f.u32(36))
}

// FuncID is the raw internal/abi.FuncID of the function: the values change
// between releases, so naming them is the reader's business.
func (f Func) FuncID() uint8 { return f.u8(f.t.funcIDOff) }

// Flag is the function's internal/abi.FuncFlag bits.
func (f Func) Flag() uint8 { return f.u8(f.t.flagOff) }

func (f Func) pcsp() uint32     { return f.u32(16) }
func (f Func) pcfile() uint32   { return f.u32(20) }
func (f Func) pcln() uint32     { return f.u32(24) }
func (f Func) npcdata() uint32  { return f.u32(28) }
func (f Func) cuOffset() uint32 { return f.u32(32) }
func (f Func) nfuncdata() uint8 { return f.u8(f.t.nfuncdataOff) }
func (f Func) pcdataOff(table uint32) uint32 {
	if table >= f.npcdata() {
		return 0
	}
	return f.u32(f.t.funcSize + 4*table)
}

// FuncData returns the bytes of funcdata table i (an internal/abi
// FUNCDATA_* index), from its start to the end of the static data holding
// it; nil when the function has none or the table was given no gofunc.
func (f Func) FuncData(i uint8) []byte {
	if i >= f.nfuncdata() || f.t.gofunc == nil {
		return nil
	}
	off := f.u32(f.t.funcSize + 4*f.npcdata() + 4*uint32(i))
	if off == ^uint32(0) || uint64(off) >= uint64(len(f.t.gofunc)) {
		return nil
	}
	return f.t.gofunc[off:]
}

// PCData returns the value at pc of pcdata table i (an internal/abi
// PCDATA_* index), or -1 and false when the function has no such table or
// it does not cover pc.
func (f Func) PCData(i uint32, pc uint64) (int32, bool) {
	return f.pcvalue(f.pcdataOff(i), pc)
}

// SPDelta is the size of the function's frame at pc (below the return
// address): the pcsp table.
func (f Func) SPDelta(pc uint64) (int32, bool) {
	v, ok := f.pcvalue(f.pcsp(), pc)
	if !ok {
		return 0, false
	}
	return v, true
}

// FileLine returns the source position of pc in the function's own
// tables: for an inlined call it is the position inside the inlined body.
func (f Func) FileLine(pc uint64) (string, int) {
	fileno, ok := f.pcvalue(f.pcfile(), pc)
	if !ok {
		return "?", 0
	}
	line, ok := f.pcvalue(f.pcln(), pc)
	if !ok {
		return "?", 0
	}
	return f.t.fileName(f.cuOffset(), fileno), int(line)
}

func (t *Table) fileName(cu uint32, fileno int32) string {
	if fileno < 0 {
		return "?"
	}
	fo := u32(t.cutab, (uint64(cu)+uint64(fileno))*4)
	if fo == ^uint32(0) {
		return "?"
	}
	return cstring(t.filetab, int32(fo))
}

// cstring returns the NUL-terminated string at off in tab, sharing tab's
// bytes.
func cstring(tab []byte, off int32) string {
	if off < 0 || int(off) >= len(tab) {
		return ""
	}
	b := tab[off:]
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	if n == 0 {
		return ""
	}
	return unsafe.String(&b[0], n)
}

// pcvalue returns the value of the pc-value table at off in pctab for
// targetpc, and whether the table covers it; the decoding is the
// runtime's pcvalue (runtime/symtab.go).
func (f Func) pcvalue(off uint32, targetpc uint64) (int32, bool) {
	t := f.t
	if off == 0 || uint64(off) >= uint64(len(t.pctab)) {
		return -1, false
	}
	p := t.pctab[off:]
	pc := f.Entry
	val := int32(-1)
	for first := true; ; first = false {
		var ok bool
		p, ok = t.step(p, &pc, &val, first)
		if !ok {
			return -1, false
		}
		if targetpc < pc {
			return val, true
		}
	}
}

// step decodes one (value delta, pc delta) pair of a pc-value table. The
// table shrinks by at least two bytes a step, so a loop over it ends.
func (t *Table) step(p []byte, pc *uint64, val *int32, first bool) ([]byte, bool) {
	if len(p) == 0 {
		return nil, false
	}
	uvdelta, n := readVarint(p)
	if n == 0 || (uvdelta == 0 && !first) {
		return nil, false
	}
	p = p[n:]
	*val += int32(-(uvdelta & 1) ^ (uvdelta >> 1))
	pcdelta, n := readVarint(p)
	if n == 0 {
		return nil, false
	}
	p = p[n:]
	*pc += uint64(pcdelta) * t.quantum
	return p, true
}

func readVarint(p []byte) (uint32, int) {
	var v uint32
	var shift uint
	for i, b := range p {
		if i >= 5 {
			return 0, 0
		}
		v |= uint32(b&0x7f) << shift
		if b&0x80 == 0 {
			return v, i + 1
		}
		shift += 7
	}
	return 0, 0
}

// Logical is one logical frame of a physical one: the function itself or a
// function inlined into it.
type Logical struct {
	Name    string
	File    string
	Line    int
	FuncID  uint8
	Inlined bool // the call was inlined into its caller (printed "(...)")
}

// maxInlineDepth bounds the walk up an inline tree, whose parent links a
// damaged table could make circular.
const maxInlineDepth = 256

// Logical appends the logical frames at pc, innermost first, as the
// runtime's inline unwinder yields them (runtime/symtabinl.go): the
// inlined calls from the inline tree, then the function itself. pc is the
// pc to symbolize (already backed up into the call instruction). Go 1.18
// and 1.19 tables, whose inline tree has another record, give the
// function alone.
func (f Func) Logical(pc uint64, out []Logical) []Logical {
	var tree []byte
	if f.t.Magic != Go118Magic {
		tree = f.FuncData(funcdataInlTree)
	}
	for range maxInlineDepth {
		idx := int32(-1)
		if tree != nil {
			if v, ok := f.PCData(pcdataInlTreeIndex, pc); ok {
				idx = v
			}
		}
		file, line := f.FileLine(pc)
		if idx < 0 || uint64(idx+1)*inlinedCallSize > uint64(len(tree)) {
			return append(out, Logical{Name: f.Name(), File: file, Line: line, FuncID: f.FuncID()})
		}
		ic := tree[idx*inlinedCallSize:]
		nameOff := int32(le.Uint32(ic[4:]))
		parentPc := int32(le.Uint32(ic[8:]))
		out = append(out, Logical{Name: cstring(f.t.funcnametab, nameOff), File: file, Line: line, FuncID: ic[0], Inlined: true})
		pc = f.Entry + uint64(parentPc)
	}
	return out
}
