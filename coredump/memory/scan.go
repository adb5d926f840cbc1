package memory

import (
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
)

// GoPointer is a word of C-owned memory that points into Go memory.
type GoPointer struct {
	// Holder is where the word lives; HolderName names it ("saved_record",
	// "libfoo.so`table+0x10", "C heap mapping 0x...+0x40").
	Holder     coredump.Addr `json:"holder"`
	HolderName string        `json:"holder_name"`
	// HolderKind is "C global" or "C heap".
	HolderKind string `json:"holder_kind"`
	// Chunk is the user pointer of the in-use malloc chunk holding the
	// word; 0 for a C global, or C heap whose chunks are not known.
	Chunk coredump.Addr `json:"chunk,omitempty"`
	Value coredump.Addr `json:"value"`
	// Target is what the Go memory is now.
	Target *Region `json:"target"`
}

// Bounds of the scan of C memory.
const (
	maxScanBytes   = 256 << 20
	maxScanSymbol  = 1 << 20
	maxGoPointers  = 1024
	scanChunkBytes = 64 << 10
)

// CHeldGoPointers scans the memory C code owns — the C globals of the
// executable and of the loaded libraries, and the user data of the C
// heap's in-use chunks — for words that point into Go heap objects. Under
// cgo's rules C may not keep such pointers after the call that received
// them returns; each one found is a violation, and the Go memory may since
// have been freed or reused. notes say what could not be scanned.
//
// Only what C can have received from Go counts. cgo makes every pointer
// argument escape to the heap (the generated _Cgo_use), so C is never
// handed a pointer into a goroutine stack: a C word pointing into a Go
// stack is a saved stack or frame pointer (a jmp_buf, a ucontext, spilled
// callee-saved registers), not a retained Go pointer. Likewise the
// runtime's g, which Go code keeps in a register (R14 on amd64) that C
// saves with the other callee-saved registers: no Go code passes it.
func (s *Space) CHeldGoPointers() (found []GoPointer, notes []string) {
	s.loadGo()
	if s.heap == nil {
		return nil, nil
	}
	budget := uint64(maxScanBytes)
	scan := func(start, end uint64, kind string, chunk uint64, name func(at uint64) string, skip func(at uint64) bool) {
		if end <= start || budget == 0 {
			return
		}
		end = min(end, start+budget)
		budget -= end - start
		buf := make([]byte, scanChunkBytes)
		for a := start &^ 7; a < end && len(found) < maxGoPointers; a += scanChunkBytes {
			n := min(uint64(len(buf)), end-a)
			got, _ := s.p.ReadMemory(buf[:n], a) // scan the readable bytes only
			for off := 0; off+8 <= got; off += 8 {
				w := le.Uint64(buf[off:])
				if w < nullPageLimit || !s.heap.Contains(w) {
					continue
				}
				at := a + uint64(off)
				if s.inTLS(at) {
					continue // the runtime's own g slot in a thread's TLS (runtime.tlsg)
				}
				if skip != nil && skip(at) {
					continue
				}
				r := s.Classify(w)
				if r.Kind != GoHeap || s.isG(r) {
					continue
				}
				found = append(found, GoPointer{Holder: coredump.Addr(at), HolderName: name(at), HolderKind: kind,
					Value: coredump.Addr(w), Target: r, Chunk: coredump.Addr(chunk)})
				if len(found) >= maxGoPointers {
					notes = append(notes, fmt.Sprintf("stopped after %d Go pointers in C memory", maxGoPointers))
					return
				}
			}
		}
	}
	for _, im := range s.p.Images {
		if im.Status == coredump.ImageInMemory {
			continue
		}
		f, err := im.ELF()
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: not scanned: %v", im.Name(), err))
			continue
		}
		saves := s.registerSaveGlobals(im)
		symName := func(at uint64) string {
			if sym, ok := nearestSymbol(im, at); ok {
				w := sym.Name
				if at != sym.Addr {
					w = fmt.Sprintf("%s+%#x", sym.Name, at-sym.Addr)
				}
				if !im.IsExe {
					w = im.Name() + "`" + w
				}
				return w
			}
			return fmt.Sprintf("%s+%#x", im.Name(), at-im.Bias)
		}
		if im.IsExe && s.bin != nil {
			// A Go executable: its Go globals hold Go pointers by right;
			// scan only the C objects linked into it.
			for _, sym := range im.Symbols() {
				if sym.Kind != elf.STT_OBJECT || sym.Size < 8 || isGoSymbol(sym.Name) || cgoRuntimeSymbol(sym.Name) || saves[sym.Name] {
					continue
				}
				sec := s.sectionOf(im, sym.Addr)
				if sec != ".data" && sec != ".bss" {
					continue
				}
				scan(sym.Addr, sym.Addr+min(sym.Size, maxScanSymbol), "C global", 0, symName, nil)
			}
			continue
		}
		inSave := func(at uint64) bool {
			sym, ok := im.SymbolAt(at)
			return ok && saves[sym.Name]
		}
		for _, sec := range f.Sections {
			if (sec.Name == ".data" || sec.Name == ".bss") && sec.Flags&elf.SHF_WRITE != 0 {
				scan(sec.Addr+im.Bias, sec.Addr+im.Bias+sec.Size, "C global", 0, symName, inSave)
			}
		}
	}
	ranges, heapNotes := s.cHeapRanges()
	notes = append(notes, heapNotes...)
	for _, hr := range ranges {
		scan(hr.start, hr.end, "C heap", hr.chunk, func(at uint64) string {
			return fmt.Sprintf("%s+%#x", hr.name, at-hr.start)
		}, nil)
	}
	if budget == 0 {
		notes = append(notes, fmt.Sprintf("C memory scanned only up to %d MiB", maxScanBytes>>20))
	}
	return found, notes
}

// isG reports a Go heap object that is one of the runtime's g structures.
func (s *Space) isG(r *Region) bool {
	rt := s.Runtime()
	return rt != nil && r.Heap != nil && r.Heap.Object != 0 && rt.GByAddr(uint64(r.Heap.Object)) != nil
}

// cgoRuntimeSymbol reports the C half of the Go runtime (runtime/cgo),
// whose globals point at Go code and data by design.
func cgoRuntimeSymbol(name string) bool {
	for _, p := range []string{"_cgo_", "x_cgo_", "__cgo", "_cgo", "crosscall", "setg_gcc"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func (s *Space) sectionOf(im *coredump.Image, addr uint64) string {
	for _, sec := range s.sections(im) {
		if addr >= sec.start && addr < sec.end {
			return sec.name
		}
	}
	return ""
}

// registerSaveTypes are the C library's types for a saved register
// context: setjmp and getcontext copy the caller's registers into them
// wholesale, whatever those registers held.
var registerSaveTypes = map[string]bool{
	"jmp_buf": true, "sigjmp_buf": true, "__jmp_buf_tag": true, "__jmp_buf": true,
	"ucontext_t": true, "ucontext": true, "mcontext_t": true, "sigcontext": true,
}

// registerSaveGlobals names the C globals of an image whose DWARF type is
// a saved register context (a jmp_buf, a ucontext_t). The words in them
// are registers, not values C stored: a Go pointer among them is what Go
// code had in a callee-saved register when C called setjmp, not a pointer
// C kept.
func (s *Space) registerSaveGlobals(im *coredump.Image) map[string]bool {
	s.secMu.Lock()
	defer s.secMu.Unlock()
	if v, ok := s.regSaves[im]; ok {
		return v
	}
	out := map[string]bool{}
	s.regSaves[im] = out
	f, err := im.ELF()
	if err != nil {
		return out
	}
	d, err := f.DWARF()
	if err != nil {
		return out
	}
	rd := d.Reader()
	for n := 0; n < maxDWARFEntries; n++ {
		e, err := rd.Next()
		if err != nil || e == nil {
			break
		}
		switch e.Tag {
		case dwarf.TagCompileUnit:
			// Go's own units hold no C globals.
			if lang, ok := e.Val(dwarf.AttrLanguage).(int64); ok && lang == dwarfLangGo {
				rd.SkipChildren()
			}
		case dwarf.TagVariable:
			name, _ := e.Val(dwarf.AttrName).(string)
			off, ok := e.Val(dwarf.AttrType).(dwarf.Offset)
			if name != "" && ok && registerSaveType(d, off) {
				out[name] = true
			}
		case dwarf.TagSubprogram, dwarf.TagStructType, dwarf.TagUnionType:
			rd.SkipChildren() // function locals and members are not globals
		}
	}
	return out
}

// DWARF facts for the walk above.
const (
	dwarfLangGo     = 0x16 // DW_LANG_Go
	maxDWARFEntries = 1 << 22
	maxTypeHops     = 16
)

// registerSaveType follows a type through typedefs, qualifiers and arrays
// and reports whether any name on the way is a register-save type.
func registerSaveType(d *dwarf.Data, off dwarf.Offset) bool {
	rd := d.Reader()
	for range maxTypeHops {
		rd.Seek(off)
		e, err := rd.Next()
		if err != nil || e == nil {
			return false
		}
		if name, _ := e.Val(dwarf.AttrName).(string); registerSaveTypes[name] {
			return true
		}
		next, ok := e.Val(dwarf.AttrType).(dwarf.Offset)
		if !ok {
			return false
		}
		off = next
	}
	return false
}
