package memory

import (
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
	HolderKind string        `json:"holder_kind"`
	Value      coredump.Addr `json:"value"`
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
// executable and of the loaded libraries, and the C heap — for words that
// point into the Go heap (objects or goroutine stacks). Under cgo's rules
// C may not keep such pointers after the call that received them returns;
// each one found is a violation, and the Go memory may since have been
// freed or reused. notes say what could not be scanned.
func (s *Space) CHeldGoPointers() (found []GoPointer, notes []string) {
	s.loadGo()
	if s.heap == nil {
		return nil, nil
	}
	budget := uint64(maxScanBytes)
	scan := func(start, end uint64, kind string, name func(at uint64) string) {
		if end <= start || budget == 0 {
			return
		}
		end = min(end, start+budget)
		budget -= end - start
		buf := make([]byte, scanChunkBytes)
		for a := start &^ 7; a < end && len(found) < maxGoPointers; a += scanChunkBytes {
			n := min(uint64(len(buf)), end-a)
			got, _ := s.p.ReadMemory(buf[:n], a)
			for off := 0; off+8 <= got; off += 8 {
				w := le.Uint64(buf[off:])
				if w < nullPageLimit || !s.heap.Contains(w) {
					continue
				}
				at := a + uint64(off)
				if s.inTLS(at) {
					continue // the runtime's own g slot in a thread's TLS (runtime.tlsg)
				}
				r := s.Classify(w)
				if r.Kind != GoHeap && r.Kind != GoStack {
					continue
				}
				found = append(found, GoPointer{Holder: coredump.Addr(at), HolderName: name(at), HolderKind: kind,
					Value: coredump.Addr(w), Target: r})
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
				if sym.Kind != elf.STT_OBJECT || sym.Size < 8 || isGoSymbol(sym.Name) || cgoRuntimeSymbol(sym.Name) {
					continue
				}
				sec := s.sectionOf(im, sym.Addr)
				if sec != ".data" && sec != ".bss" {
					continue
				}
				scan(sym.Addr, sym.Addr+min(sym.Size, maxScanSymbol), "C global", symName)
			}
			continue
		}
		for _, sec := range f.Sections {
			if (sec.Name == ".data" || sec.Name == ".bss") && sec.Flags&elf.SHF_WRITE != 0 {
				scan(sec.Addr+im.Bias, sec.Addr+im.Bias+sec.Size, "C global", symName)
			}
		}
	}
	for _, m := range s.cHeapMappings() {
		base := m.Start
		scan(m.Start, m.End, "C heap", func(at uint64) string {
			return fmt.Sprintf("C heap mapping %#x+%#x", base, at-base)
		})
	}
	if budget == 0 {
		notes = append(notes, fmt.Sprintf("C memory scanned only up to %d MiB", maxScanBytes>>20))
	}
	return found, notes
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
