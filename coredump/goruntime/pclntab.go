package goruntime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// The pclntab (.gopclntab) is the runtime's own symbol table: every Go
// function's entry, name, frame-size (pcsp), file and line (pcfile, pcln)
// and inline-tree tables. The runtime prints its tracebacks from it, so
// reading it here gives frames exactly as the runtime names them, and it
// survives -ldflags="-s -w". Layout: runtime/symtab.go, the linker's
// cmd/link/internal/ld/pcln.go (Go 1.20 to 1.26 share the format).

// pclntab magic numbers (runtime/symtab.go, internal/abi.PCLnTabMagic).
const (
	go118Magic = 0xfffffff0 // Go 1.18, 1.19
	go120Magic = 0xfffffff1 // Go 1.20 and later
)

// funcHeaderSize is the size of runtime._func up to and including
// nfuncdata; pcdata and funcdata offsets follow it.
const funcHeaderSize = 44

// Indexes of the pcdata and funcdata tables the unwinder reads
// (internal/abi: PCDATA_InlTreeIndex, FUNCDATA_InlTree). They have not
// changed since Go 1.12.
const (
	pcdataInlTreeIndex = 2
	funcdataInlTree    = 3
)

// inlinedCallSize is the size of one runtime.inlinedCall (funcID, pad,
// nameOff, parentPc, startLine).
const inlinedCallSize = 16

// FuncTable is a parsed .gopclntab. Lookups do not allocate: names and file
// names are strings that share the section's bytes.
type FuncTable struct {
	data        []byte
	ptrSize     int
	quantum     uint64
	nfunc       int
	funcnametab []byte
	cutab       []byte
	filetab     []byte
	pctab       []byte
	pclntable   []byte
	ftab        []byte

	// text is the run-time address function entry offsets are relative to
	// (moduledata.text); MinPC and MaxPC bound the Go text.
	text         uint64
	MinPC, MaxPC uint64

	// gofunc holds the static data funcdata offsets are relative to
	// (moduledata.gofunc): the bytes and their run-time address.
	gofunc     []byte
	gofuncAddr uint64

	ids funcIDs

	byName map[string]int
}

// Func is one function of the table.
type Func struct {
	t   *FuncTable
	off uint32 // offset of the runtime._func in pclntable
	// Entry is the run-time address of the first instruction.
	Entry uint64
	idx   int
}

// Valid reports whether f names a function.
func (f Func) Valid() bool { return f.t != nil }

func (t *FuncTable) u32(b []byte, off uint32) uint32 {
	if uint64(off)+4 > uint64(len(b)) {
		return 0
	}
	return binary.LittleEndian.Uint32(b[off:])
}

// pclntabHeader holds the fields of runtime.pcHeader.
type pclntabHeader struct {
	magic                                             uint32
	minLC, ptrSize                                    uint8
	nfunc, nfiles                                     uint64
	textStart                                         uint64
	funcnameOff, cuOff, filetabOff, pctabOff, pclnOff uint64
}

func parsePclntabHeader(data []byte) (*pclntabHeader, error) {
	if len(data) < 8 {
		return nil, errors.New(".gopclntab too short")
	}
	h := &pclntabHeader{magic: binary.LittleEndian.Uint32(data), minLC: data[6], ptrSize: data[7]}
	switch h.magic {
	case go118Magic, go120Magic:
	default:
		return nil, fmt.Errorf(".gopclntab magic %#x: only the Go 1.18+ formats are supported", h.magic)
	}
	if h.ptrSize != 8 || data[4] != 0 || data[5] != 0 || (h.minLC != 1 && h.minLC != 4) {
		return nil, fmt.Errorf(".gopclntab header: pointer size %d, quantum %d: not a 64-bit table", h.ptrSize, h.minLC)
	}
	if len(data) < 8+8*8 {
		return nil, errors.New(".gopclntab header truncated")
	}
	w := func(i int) uint64 { return binary.LittleEndian.Uint64(data[8+8*i:]) }
	h.nfunc, h.nfiles, h.textStart = w(0), w(1), w(2)
	h.funcnameOff, h.cuOff, h.filetabOff, h.pctabOff, h.pclnOff = w(3), w(4), w(5), w(6), w(7)
	n := uint64(len(data))
	for _, o := range []uint64{h.funcnameOff, h.cuOff, h.filetabOff, h.pctabOff, h.pclnOff} {
		if o > n {
			return nil, fmt.Errorf(".gopclntab header: table offset %#x past the end (%#x bytes)", o, n)
		}
	}
	if !(h.funcnameOff <= h.cuOff && h.cuOff <= h.filetabOff && h.filetabOff <= h.pctabOff && h.pctabOff <= h.pclnOff) {
		return nil, errors.New(".gopclntab header: table offsets out of order")
	}
	if h.nfunc == 0 || h.nfunc > (n-h.pclnOff)/8 {
		return nil, fmt.Errorf(".gopclntab header: %d functions do not fit", h.nfunc)
	}
	return h, nil
}

// newFuncTable parses the .gopclntab bytes. text is the run-time address
// of moduledata.text; gofunc and gofuncAddr the static data funcdata
// offsets point into (nil when unknown: no inline trees then).
func newFuncTable(data []byte, text uint64, gofunc []byte, gofuncAddr uint64, ids funcIDs) (*FuncTable, error) {
	h, err := parsePclntabHeader(data)
	if err != nil {
		return nil, err
	}
	t := &FuncTable{
		data:        data,
		ptrSize:     int(h.ptrSize),
		quantum:     uint64(h.minLC),
		nfunc:       int(h.nfunc),
		funcnametab: data[h.funcnameOff:h.cuOff],
		cutab:       data[h.cuOff:h.filetabOff],
		filetab:     data[h.filetabOff:h.pctabOff],
		pctab:       data[h.pctabOff:h.pclnOff],
		pclntable:   data[h.pclnOff:],
		text:        text,
		gofunc:      gofunc,
		gofuncAddr:  gofuncAddr,
		ids:         ids,
	}
	t.ftab = t.pclntable[:(t.nfunc+1)*8]
	// The last ftab entry is the end of the text; entries must ascend.
	prev := uint32(0)
	for i := 0; i <= t.nfunc; i++ {
		e := binary.LittleEndian.Uint32(t.ftab[8*i:])
		if e < prev {
			return nil, fmt.Errorf(".gopclntab: function %d entry %#x below the previous one", i, e)
		}
		prev = e
		if i < t.nfunc {
			fo := binary.LittleEndian.Uint32(t.ftab[8*i+4:])
			if uint64(fo)+funcHeaderSize > uint64(len(t.pclntable)) {
				return nil, fmt.Errorf(".gopclntab: function %d record at %#x out of range", i, fo)
			}
		}
	}
	t.MinPC = text + uint64(binary.LittleEndian.Uint32(t.ftab[0:]))
	t.MaxPC = text + uint64(prev)
	if t.ids.wrapper == 0 {
		t.ids.inferWrapper(t)
	}
	return t, nil
}

// NumFuncs is the number of functions in the table.
func (t *FuncTable) NumFuncs() int { return t.nfunc }

func (t *FuncTable) entryOff(i int) uint32 { return binary.LittleEndian.Uint32(t.ftab[8*i:]) }

func (t *FuncTable) funcAt(i int) Func {
	fo := binary.LittleEndian.Uint32(t.ftab[8*i+4:])
	return Func{t: t, off: fo, Entry: t.text + uint64(t.entryOff(i)), idx: i}
}

// FuncAt returns the function whose code contains pc.
func (t *FuncTable) FuncAt(pc uint64) (Func, bool) {
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
	return t.funcAt(lo - 1), true
}

// FuncByName returns the function called name (the first, if the name is
// not unique).
func (t *FuncTable) FuncByName(name string) (Func, bool) {
	if t.byName == nil {
		t.byName = make(map[string]int, t.nfunc)
		for i := t.nfunc - 1; i >= 0; i-- {
			t.byName[t.funcAt(i).Name()] = i
		}
	}
	i, ok := t.byName[name]
	if !ok {
		return Func{}, false
	}
	return t.funcAt(i), true
}

// Funcs calls fn for every function in address order.
func (t *FuncTable) Funcs(fn func(Func) bool) {
	for i := 0; i < t.nfunc; i++ {
		if !fn(t.funcAt(i)) {
			return
		}
	}
}

// field readers of runtime._func.
func (f Func) u32(off uint32) uint32 { return f.t.u32(f.t.pclntable, f.off+off) }
func (f Func) u8(off uint32) uint8 {
	if uint64(f.off)+uint64(off) >= uint64(len(f.t.pclntable)) {
		return 0
	}
	return f.t.pclntable[f.off+off]
}

// End is the address after the function's last instruction.
func (f Func) End() uint64 {
	if f.idx+1 > f.t.nfunc {
		return f.Entry
	}
	return f.t.text + uint64(f.t.entryOff(f.idx+1))
}

// Name is the function's symbol name, e.g. "main.(*Server).maxIdle".
func (f Func) Name() string { return f.t.cstring(f.t.funcnametab, int32(f.u32(4))) }

// Args is the size of the function's arguments and results in bytes.
func (f Func) Args() int32 { return int32(f.u32(8)) }

// StartLine is the line of the func keyword (or TEXT directive).
func (f Func) StartLine() int32 { return int32(f.u32(36)) }

// FuncID is the runtime's raw internal/abi.FuncID of the function.
func (f Func) FuncID() uint8 { return f.u8(40) }

// Flag is the runtime's internal/abi.FuncFlag bits.
func (f Func) Flag() uint8 { return f.u8(41) }

func (f Func) pcsp() uint32    { return f.u32(16) }
func (f Func) pcfile() uint32  { return f.u32(20) }
func (f Func) pcln() uint32    { return f.u32(24) }
func (f Func) npcdata() uint32 { return f.u32(28) }
func (f Func) cuOffset() uint32 {
	return f.u32(32)
}
func (f Func) nfuncdata() uint8 { return f.u8(43) }

func (f Func) pcdataOff(table uint32) uint32 {
	if table >= f.npcdata() {
		return 0
	}
	return f.u32(funcHeaderSize + 4*table)
}

// funcdata returns the bytes of funcdata table i, from its start to the
// end of the static data holding it.
func (f Func) funcdata(i uint8) []byte {
	if i >= f.nfuncdata() || f.t.gofunc == nil {
		return nil
	}
	off := f.u32(funcHeaderSize + 4*f.npcdata() + 4*uint32(i))
	if off == ^uint32(0) || uint64(off) >= uint64(len(f.t.gofunc)) {
		return nil
	}
	return f.t.gofunc[off:]
}

// Kind says what special role the function plays for unwinding.
func (f Func) Kind() FuncKind {
	return f.t.ids.kindOf(f.FuncID(), f)
}

// cstring returns the NUL-terminated string at off in tab, sharing tab's
// bytes.
func (t *FuncTable) cstring(tab []byte, off int32) string {
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

// pcvalue returns the value of the pc-value table at off for targetpc,
// and whether it was found. Tables: runtime/symtab.go pcvalue.
func (t *FuncTable) pcvalue(f Func, off uint32, targetpc uint64) (int32, bool) {
	if off == 0 || uint64(off) >= uint64(len(t.pctab)) {
		return -1, false
	}
	p := t.pctab[off:]
	pc := f.Entry
	val := int32(-1)
	first := true
	for {
		var ok bool
		p, ok = t.step(p, &pc, &val, first)
		if !ok {
			return -1, false
		}
		first = false
		if targetpc < pc {
			return val, true
		}
	}
}

// step decodes one (value delta, pc delta) pair of a pc-value table.
func (t *FuncTable) step(p []byte, pc *uint64, val *int32, first bool) ([]byte, bool) {
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

// SPDelta is the size of the function's frame at pc (below the return
// address): the pcsp table.
func (f Func) SPDelta(pc uint64) (int32, bool) {
	v, ok := f.t.pcvalue(f, f.pcsp(), pc)
	if !ok {
		return 0, false
	}
	return v, true
}

// FileLine returns the source position of pc in the function's own
// tables: for an inlined call it is the position inside the inlined body.
func (f Func) FileLine(pc uint64) (string, int) {
	fileno, ok := f.t.pcvalue(f, f.pcfile(), pc)
	if !ok {
		return "?", 0
	}
	line, ok := f.t.pcvalue(f, f.pcln(), pc)
	if !ok {
		return "?", 0
	}
	return f.t.fileName(f.cuOffset(), fileno), int(line)
}

func (t *FuncTable) fileName(cu uint32, fileno int32) string {
	if fileno < 0 {
		return "?"
	}
	fo := t.u32(t.cutab, (cu+uint32(fileno))*4)
	if fo == ^uint32(0) {
		return "?"
	}
	return t.cstring(t.filetab, int32(fo))
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

// Logical appends the logical frames at pc, innermost first, as the
// runtime's inline unwinder yields them (runtime/symtabinl.go): the
// inlined calls from the inline tree, then the function itself. pc is the
// pc to symbolize (already backed up into the call instruction).
func (f Func) Logical(pc uint64, out []Logical) []Logical {
	tree := f.funcdata(funcdataInlTree)
	for depth := 0; depth < 256; depth++ {
		idx := int32(-1)
		if tree != nil {
			if v, ok := f.t.pcvalue(f, f.pcdataOff(pcdataInlTreeIndex), pc); ok {
				idx = v
			}
		}
		file, line := f.FileLine(pc)
		if idx < 0 || uint64(idx+1)*inlinedCallSize > uint64(len(tree)) {
			return append(out, Logical{Name: f.Name(), File: file, Line: line, FuncID: f.FuncID()})
		}
		ic := tree[idx*inlinedCallSize:]
		nameOff := int32(binary.LittleEndian.Uint32(ic[4:]))
		parentPc := int32(binary.LittleEndian.Uint32(ic[8:]))
		out = append(out, Logical{Name: f.t.cstring(f.t.funcnametab, nameOff), File: file, Line: line, FuncID: ic[0], Inlined: true})
		pc = f.Entry + uint64(parentPc)
	}
	return out
}

// funcIDs maps the runtime's FuncID values, which change between
// releases (Go 1.23 added corostart, 1.25 runFinalizers and runCleanups),
// to the roles the unwinder cares about. The values come from the
// binary's DWARF constants internal/abi.FuncID_*; without DWARF they are
// learnt from the functions that carry them (runtime.systemstack carries
// FuncID_systemstack, ...).
type funcIDs struct {
	byID    map[uint8]FuncKind
	wrapper uint8 // FuncIDWrapper; 0 when unknown
	// Function flag bits (internal/abi.FuncFlag*).
	flagTopFrame, flagSPWrite, flagAsm uint8
}

// FuncKind is the role of a function in unwinding and crash handling.
type FuncKind uint8

const (
	KindNormal FuncKind = iota
	KindWrapper
	KindAbort
	KindAsmcgocall
	KindAsyncPreempt
	KindCgocallback
	KindDebugCall
	KindGoexit
	KindGogo
	KindGopanic
	KindMcall
	KindMorestack
	KindMstart
	KindPanicwrap
	KindRt0
	KindRuntimeMain
	KindSigpanic
	KindSystemstack
	KindSystemstackSwitch
	KindOther // another special function (gcBgMarkWorker, runfinq, ...)
)

var funcKindNames = [...]string{"normal", "wrapper", "abort", "asmcgocall", "asyncPreempt", "cgocallback",
	"debugCall", "goexit", "gogo", "gopanic", "mcall", "morestack", "mstart", "panicwrap", "rt0_go",
	"runtime.main", "sigpanic", "systemstack", "systemstack_switch", "other"}

func (k FuncKind) String() string {
	if int(k) < len(funcKindNames) {
		return funcKindNames[k]
	}
	return fmt.Sprintf("FuncKind(%d)", uint8(k))
}

// specialFuncs names, for each FuncID constant suffix, the runtime
// function that carries it and the role.
var specialFuncs = map[string]struct {
	fn   string
	kind FuncKind
}{
	"abort":              {"runtime.abort", KindAbort},
	"asmcgocall":         {"runtime.asmcgocall", KindAsmcgocall},
	"asyncPreempt":       {"runtime.asyncPreempt", KindAsyncPreempt},
	"cgocallback":        {"runtime.cgocallback", KindCgocallback},
	"debugCallV2":        {"runtime.debugCallV2", KindDebugCall},
	"goexit":             {"runtime.goexit", KindGoexit},
	"gogo":               {"runtime.gogo", KindGogo},
	"gopanic":            {"runtime.gopanic", KindGopanic},
	"mcall":              {"runtime.mcall", KindMcall},
	"morestack":          {"runtime.morestack", KindMorestack},
	"mstart":             {"runtime.mstart", KindMstart},
	"panicwrap":          {"runtime.panicwrap", KindPanicwrap},
	"rt0_go":             {"runtime.rt0_go", KindRt0},
	"runtime_main":       {"runtime.main", KindRuntimeMain},
	"sigpanic":           {"runtime.sigpanic", KindSigpanic},
	"systemstack":        {"runtime.systemstack", KindSystemstack},
	"systemstack_switch": {"runtime.systemstack_switch", KindSystemstackSwitch},
}

// funcIDsFromDWARF reads the FuncID and FuncFlag constants.
func funcIDsFromDWARF(l *Layout) (funcIDs, bool) {
	ids := funcIDs{byID: map[uint8]FuncKind{}}
	consts := l.Consts("internal/abi.FuncID")
	if len(consts) == 0 {
		return ids, false
	}
	for name, v := range consts {
		suffix := strings.TrimPrefix(name, "internal/abi.FuncID")
		switch {
		case suffix == "Wrapper":
			ids.wrapper = uint8(v)
		case suffix == "Normal":
		case strings.HasPrefix(suffix, "_"):
			if s, ok := specialFuncs[suffix[1:]]; ok {
				ids.byID[uint8(v)] = s.kind
			} else {
				ids.byID[uint8(v)] = KindOther
			}
		}
	}
	ids.flagTopFrame, ids.flagSPWrite, ids.flagAsm = defaultFuncFlags()
	if v, ok := l.Const("internal/abi.FuncFlagTopFrame"); ok {
		ids.flagTopFrame = uint8(v)
	}
	if v, ok := l.Const("internal/abi.FuncFlagSPWrite"); ok {
		ids.flagSPWrite = uint8(v)
	}
	if v, ok := l.Const("internal/abi.FuncFlagAsm"); ok {
		ids.flagAsm = uint8(v)
	}
	return ids, ids.wrapper != 0
}

// learnFuncIDs derives the FuncID roles from the functions that carry
// them, for binaries without DWARF.
func learnFuncIDs(t *FuncTable) {
	ids := funcIDs{byID: map[uint8]FuncKind{}}
	ids.flagTopFrame, ids.flagSPWrite, ids.flagAsm = defaultFuncFlags()
	maxSpecial := uint8(0)
	for _, s := range specialFuncs {
		f, ok := t.FuncByName(s.fn)
		if !ok {
			continue
		}
		if id := f.FuncID(); id != 0 {
			ids.byID[id] = s.kind
			maxSpecial = max(maxSpecial, id)
		}
	}
	t.ids = ids
	t.ids.inferWrapper(t)
	if t.ids.wrapper <= maxSpecial {
		t.ids.wrapper = 0
	}
}

// inferWrapper sets the wrapper FuncID to the largest FuncID any function
// carries: FuncIDWrapper is the last constant of the enumeration in every
// release, and every binary has autogenerated wrappers.
func (ids *funcIDs) inferWrapper(t *FuncTable) {
	best := uint8(0)
	for i := 0; i < t.nfunc; i++ {
		fo := binary.LittleEndian.Uint32(t.ftab[8*i+4:])
		if int(fo)+40 < len(t.pclntable) {
			if id := t.pclntable[fo+40]; id > best {
				best = id
			}
		}
	}
	if _, special := ids.byID[best]; !special {
		ids.wrapper = best
	}
}

func (ids *funcIDs) kindOf(id uint8, f Func) FuncKind {
	if id == 0 {
		return KindNormal
	}
	if ids.wrapper != 0 && id == ids.wrapper {
		return KindWrapper
	}
	if k, ok := ids.byID[id]; ok {
		return k
	}
	return KindOther
}

// TopFrame reports a function that is the outermost frame of its stack.
func (f Func) TopFrame() bool { return f.Flag()&f.t.ids.flagTopFrame != 0 }

// SPWrite reports a function that writes SP in ways pcsp cannot describe.
func (f Func) SPWrite() bool { return f.Flag()&f.t.ids.flagSPWrite != 0 }

// IsWrapper reports whether a logical frame with funcID id is an
// autogenerated wrapper.
func (t *FuncTable) IsWrapper(id uint8) bool { return t.ids.wrapper != 0 && id == t.ids.wrapper }

// KindOfID returns the role of a raw FuncID.
func (t *FuncTable) KindOfID(id uint8) FuncKind { return t.ids.kindOf(id, Func{}) }
