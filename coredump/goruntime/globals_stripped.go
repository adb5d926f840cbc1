package goruntime

import (
	"debug/elf"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/gobin"
	"github.com/coreexplain/coreexplain/coredump/insn"
	"golang.org/x/arch/x86/x86asm"
)

// A binary linked with -s has no symbol table, so the runtime's globals
// (runtime.allgs, allm, m0, mheap_, ...) have no names. The functions do:
// .gopclntab survives -s -w. Each global is found through the code of a
// runtime function that uses it in a way every release 1.21–1.26 compiles
// alike, e.g. allgadd appending to allgs touches allgs, allgs+8 and
// allgs+16; rt0_go stores g0 into m0.g0. StrippedGlobals decodes those
// functions (amd64) and follows their RIP-relative operands. The test
// (globals_stripped_test.go) checks every rule against the symbol table of
// unstripped builds of each toolchain.

// StrippedGlobal is a runtime global found without a symbol table.
type StrippedGlobal struct {
	Addr uint64 // link-time address
	Size uint64 // 0 when not known
	// Via names the function and pattern the address was read from.
	Via string
}

// globalSizes are the sizes of the globals whose size readers use, the
// same in every supported release.
var globalSizes = map[string]uint64{
	"runtime.allgs": 24, "runtime.argslice": 24, "runtime.allglen": 8, "runtime.allm": 8,
	"runtime.printBacklog": 512, "runtime.printBacklogIndex": 8, "runtime.argc": 4, "runtime.argv": 8,
	"runtime.iscgo": 1,
}

// StrippedGlobals finds the runtime's globals in the executable image from
// its pclntab and code. It returns what it found and, for each global it
// could not find, why. l gives struct offsets some rules need (it may be
// a fallback layout).
func StrippedGlobals(img *coredump.Image, l *Layout) (map[string]StrippedGlobal, map[string]error) {
	found, missed := map[string]StrippedGlobal{}, map[string]error{}
	code, err := newCodeIndex(img)
	if err != nil {
		for _, r := range globalRules {
			for _, n := range r.names {
				missed[n] = err
			}
		}
		return found, missed
	}
	for _, r := range globalRules {
		insns, err := code.decode(r.fn)
		var got map[string]uint64
		if err == nil {
			got, err = r.find(insns, code, l)
		}
		for _, n := range r.names {
			if a, ok := got[n]; ok && a != 0 {
				found[n] = StrippedGlobal{Addr: a, Size: globalSizes[n], Via: r.fn}
				continue
			}
			if err == nil {
				err = errors.New("pattern not found")
			}
			missed[n] = fmt.Errorf("%s: %w", r.fn, err)
		}
	}
	return found, missed
}

// codeIndex finds functions by name (pclntab) and reads their code.
type codeIndex struct {
	tab  *gobin.Table
	text *elf.Section
	arch elf.Machine
}

func newCodeIndex(img *coredump.Image) (*codeIndex, error) {
	f, err := img.ELF()
	if err != nil {
		return nil, err
	}
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("finding globals without symbols is implemented for amd64, not %s", f.Machine)
	}
	text := f.Section(".text")
	if text == nil {
		return nil, errors.New("no .text section")
	}
	tab, err := gobin.OpenELF(f)
	if err != nil {
		return nil, err
	}
	return &codeIndex{tab: tab, text: text, arch: f.Machine}, nil
}

// maxFuncBytes bounds the code read for one function; the ones the rules
// read are a few hundred bytes to a few KiB.
const maxFuncBytes = 64 << 10

// ripInsn is one decoded instruction with its RIP-relative target resolved.
type ripInsn struct {
	pc   uint64
	in   x86asm.Inst
	rip  uint64 // address a RIP-relative memory operand refers to, 0 when none
	call uint64 // target of a direct call, 0 when none
}

func (c *codeIndex) decode(name string) ([]ripInsn, error) {
	fn, ok := c.tab.FuncByName(name)
	if !ok {
		return nil, fmt.Errorf("no function %s in .gopclntab", name)
	}
	end := fn.End()
	if end <= fn.Entry || end-fn.Entry > maxFuncBytes || fn.Entry < c.text.Addr {
		return nil, fmt.Errorf("%s: implausible bounds %#x-%#x", name, fn.Entry, end)
	}
	code, err := insn.ReadCode(textAt{c.text}, coredump.ArchAMD64, fn.Entry, end, maxFuncBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out []ripInsn
	for in := range code.Insts() {
		x := ripInsn{pc: in.PC, in: in.X86}
		x.rip, _ = in.RIPTarget()
		x.call, _ = in.CallTarget()
		out = append(out, x)
	}
	return out, nil
}

// textAt reads .text by address, the offsets insn.ReadCode reads at.
type textAt struct{ s *elf.Section }

func (t textAt) ReadAt(b []byte, addr int64) (int, error) {
	return t.s.ReadAt(b, addr-int64(t.s.Addr))
}

// funcAt names the function at pc.
func (c *codeIndex) funcAt(pc uint64) string {
	if fn, ok := c.tab.FuncAt(pc); ok {
		return fn.Name()
	}
	return ""
}

// reg64 maps a register to its 64-bit form, so writes to EAX kill what
// RAX held.
func reg64(r x86asm.Reg) x86asm.Reg {
	switch {
	case x86asm.AL <= r && r <= x86asm.BL:
		return x86asm.RAX + (r - x86asm.AL)
	case x86asm.AH <= r && r <= x86asm.BH:
		return x86asm.RAX + (r - x86asm.AH)
	case x86asm.SPB <= r && r <= x86asm.R15B:
		return x86asm.RSP + (r - x86asm.SPB)
	case x86asm.AX <= r && r <= x86asm.R15W:
		return x86asm.RAX + (r - x86asm.AX)
	case x86asm.EAX <= r && r <= x86asm.R15L:
		return x86asm.RAX + (r - x86asm.EAX)
	}
	return r
}

// leaTracker follows which registers hold the address of a global loaded
// by `lea reg, [rip+X]`.
type leaTracker map[x86asm.Reg]uint64

// step updates the tracker for one instruction, after the caller looked at
// it.
func (t leaTracker) step(x ripInsn) {
	in := x.in
	if in.Op == x86asm.CALL {
		clear(t) // calls clobber the argument registers
		return
	}
	if len(in.Args) == 0 || in.Args[0] == nil {
		return
	}
	dst, ok := in.Args[0].(x86asm.Reg)
	if !ok {
		return
	}
	dst = reg64(dst)
	if in.Op == x86asm.LEA && x.rip != 0 {
		t[dst] = x.rip
		return
	}
	if in.Op == x86asm.MOV {
		if src, ok := in.Args[1].(x86asm.Reg); ok {
			if v, ok := t[reg64(src)]; ok {
				t[dst] = v
				return
			}
		}
	}
	delete(t, dst)
}

// memBase returns the base register and displacement of an instruction's
// memory operand that is not RIP-relative.
func memBase(in x86asm.Inst) (x86asm.Reg, int64, int, bool) {
	for i, a := range in.Args {
		if m, ok := a.(x86asm.Mem); ok && m.Base != 0 && m.Base != x86asm.RIP && m.Index == 0 {
			return reg64(m.Base), m.Disp, i, true
		}
	}
	return 0, 0, 0, false
}

// isStore reports whether the instruction writes its RIP-relative operand.
func isStore(in x86asm.Inst) bool {
	if len(in.Args) == 0 {
		return false
	}
	_, ok := in.Args[0].(x86asm.Mem)
	return ok && (in.Op == x86asm.MOV || in.Op == x86asm.XCHG)
}

// sliceBase finds the global X that a function touches at X, X+8 and X+16
// (a slice header being appended to or assigned).
func sliceBase(insns []ripInsn) (uint64, bool) {
	seen := map[uint64]bool{}
	for _, x := range insns {
		if x.rip != 0 {
			seen[x.rip] = true
		}
	}
	var cands []uint64
	for a := range seen {
		if seen[a+8] && seen[a+16] {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		return 0, false
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i] < cands[j] })
	return cands[0], true
}

// xchgTargets lists, in order, the globals written by XCHG (the atomic
// stores of amd64) through a register loaded by LEA.
func xchgTargets(insns []ripInsn) []uint64 {
	var out []uint64
	t := leaTracker{}
	for _, x := range insns {
		if x.in.Op == x86asm.XCHG {
			if x.rip != 0 {
				out = append(out, x.rip)
			} else if base, disp, _, ok := memBase(x.in); ok {
				if v, ok := t[base]; ok {
					out = append(out, uint64(int64(v)+disp))
				}
			}
		}
		t.step(x)
	}
	return out
}

type globalRule struct {
	fn    string
	names []string
	find  func(insns []ripInsn, c *codeIndex, l *Layout) (map[string]uint64, error)
}

var globalRules = []globalRule{
	{"runtime.allgadd", []string{"runtime.allgs", "runtime.allglen"}, func(insns []ripInsn, _ *codeIndex, _ *Layout) (map[string]uint64, error) {
		// allgs = append(allgs, gp); ...; atomic.Storeuintptr(&allglen, ...)
		out := map[string]uint64{}
		if a, ok := sliceBase(insns); ok {
			out["runtime.allgs"] = a
		}
		if x := xchgTargets(insns); len(x) > 0 {
			out["runtime.allglen"] = x[len(x)-1]
		}
		return out, nil
	}},
	{"runtime.mcommoninit", []string{"runtime.allm"}, func(insns []ripInsn, _ *codeIndex, _ *Layout) (map[string]uint64, error) {
		// mp.alllink = allm; atomicstorep(unsafe.Pointer(&allm), ...):
		// the atomically stored global that is also read plainly.
		loaded := map[uint64]bool{}
		for _, x := range insns {
			if x.rip != 0 && x.in.Op == x86asm.MOV && !isStore(x.in) && x.in.MemBytes == 8 {
				loaded[x.rip] = true
			}
		}
		for _, a := range xchgTargets(insns) {
			if loaded[a] {
				return map[string]uint64{"runtime.allm": a}, nil
			}
		}
		return nil, errors.New("no global both loaded and stored atomically")
	}},
	{"runtime.rt0_go", []string{"runtime.g0", "runtime.m0"}, func(insns []ripInsn, _ *codeIndex, l *Layout) (map[string]uint64, error) {
		// LEAQ runtime·g0(SB), DI first; later m0.g0 = &g0 and
		// g0.m = &m0 through LEA'd registers.
		out := map[string]uint64{}
		var g0 uint64
		for _, x := range insns {
			if x.in.Op == x86asm.LEA && x.rip != 0 {
				g0 = x.rip
				break
			}
		}
		if g0 == 0 {
			return nil, errors.New("no LEA of g0")
		}
		out["runtime.g0"] = g0
		mg0, err := l.Off("runtime.m", "g0")
		if err != nil {
			return out, err
		}
		t := leaTracker{}
		for _, x := range insns {
			if x.in.Op == x86asm.MOV {
				if base, disp, i, ok := memBase(x.in); ok && i == 0 && disp == mg0 {
					if src, ok := x.in.Args[1].(x86asm.Reg); ok && t[reg64(src)] == g0 && t[base] != 0 && t[base] != g0 {
						out["runtime.m0"] = t[base]
						break
					}
				}
			}
			t.step(x)
		}
		return out, nil
	}},
	{"runtime.mallocinit", []string{"runtime.mheap_"}, func(insns []ripInsn, c *codeIndex, _ *Layout) (map[string]uint64, error) {
		// mheap_.init(): the receiver in AX at the call.
		t := leaTracker{}
		for _, x := range insns {
			if x.call != 0 && c.funcAt(x.call) == "runtime.(*mheap).init" {
				if a, ok := t[x86asm.RAX]; ok {
					return map[string]uint64{"runtime.mheap_": a}, nil
				}
			}
			t.step(x)
		}
		return nil, errors.New("no call of (*mheap).init with a global receiver")
	}},
	{"runtime.schedinit", []string{"runtime.sched"}, func(insns []ripInsn, _ *codeIndex, l *Layout) (map[string]uint64, error) {
		// sched.maxmcount = 10000
		off, err := l.Off("runtime.schedt", "maxmcount")
		if err != nil {
			return nil, err
		}
		for _, x := range insns {
			if x.rip != 0 && isStore(x.in) && len(x.in.Args) > 1 {
				if imm, ok := x.in.Args[1].(x86asm.Imm); ok && imm == 10000 {
					return map[string]uint64{"runtime.sched": x.rip - uint64(off)}, nil
				}
			}
		}
		return nil, errors.New("no store of 10000 (sched.maxmcount)")
	}},
	{"runtime.cgocall", []string{"runtime.iscgo"}, func(insns []ripInsn, _ *codeIndex, _ *Layout) (map[string]uint64, error) {
		// if !iscgo && ... { throw("cgocall unavailable") }: the first
		// byte compared with 0.
		for _, x := range insns {
			if x.rip != 0 && x.in.Op == x86asm.CMP && x.in.MemBytes == 1 {
				if imm, ok := x.in.Args[1].(x86asm.Imm); ok && imm == 0 {
					return map[string]uint64{"runtime.iscgo": x.rip}, nil
				}
			}
		}
		return nil, errors.New("no byte compared with 0")
	}},
	{"runtime.args", []string{"runtime.argc", "runtime.argv"}, func(insns []ripInsn, _ *codeIndex, _ *Layout) (map[string]uint64, error) {
		// argc = c; argv = v
		out := map[string]uint64{}
		for _, x := range insns {
			if x.rip == 0 || !isStore(x.in) {
				continue
			}
			if _, ok := x.in.Args[1].(x86asm.Reg); !ok {
				continue
			}
			switch x.in.MemBytes {
			case 4:
				if _, ok := out["runtime.argc"]; !ok {
					out["runtime.argc"] = x.rip
				}
			case 8:
				if _, ok := out["runtime.argv"]; !ok {
					out["runtime.argv"] = x.rip
				}
			}
		}
		return out, nil
	}},
	{"runtime.goargs", []string{"runtime.argslice"}, func(insns []ripInsn, _ *codeIndex, _ *Layout) (map[string]uint64, error) {
		// argslice = make([]string, argc)
		if a, ok := sliceBase(insns); ok {
			return map[string]uint64{"runtime.argslice": a}, nil
		}
		return nil, errors.New("no slice header written")
	}},
	{"runtime.recordForPanic", []string{"runtime.printBacklog", "runtime.printBacklogIndex"}, func(insns []ripInsn, _ *codeIndex, _ *Layout) (map[string]uint64, error) {
		// copy(printBacklog[printBacklogIndex:], b); printBacklogIndex += n:
		// the index is an 8-byte global both read and written; the
		// buffer is the LEA'd global not passed to a call (debuglock is).
		out := map[string]uint64{}
		loaded, stored := map[uint64]bool{}, map[uint64]bool{}
		var leas []uint64
		passed := map[uint64]bool{}
		t := leaTracker{}
		for _, x := range insns {
			if x.rip != 0 && x.in.MemBytes == 8 && x.in.Op == x86asm.MOV {
				if isStore(x.in) {
					stored[x.rip] = true
				} else {
					loaded[x.rip] = true
				}
			}
			if x.in.Op == x86asm.LEA && x.rip != 0 {
				leas = append(leas, x.rip)
			}
			if x.call != 0 {
				if a, ok := t[x86asm.RAX]; ok {
					passed[a] = true
				}
			}
			t.step(x)
		}
		for a := range loaded {
			if stored[a] {
				out["runtime.printBacklogIndex"] = a
			}
		}
		for _, a := range leas {
			if !passed[a] {
				out["runtime.printBacklog"] = a
				break
			}
		}
		return out, nil
	}},
}

// strippedCache holds each Binary's globals found from code, computed on
// first use.
var strippedCache sync.Map // *Binary -> *strippedEntry

type strippedEntry struct {
	once   sync.Once
	found  map[string]StrippedGlobal
	missed map[string]error
}

// StrippedGlobal returns the runtime global called name of a binary
// without a symbol table, found from the code that uses it (see
// StrippedGlobals); the address is the run-time one.
func (b *Binary) StrippedGlobal(name string) (StrippedGlobal, bool) {
	v, _ := strippedCache.LoadOrStore(b, &strippedEntry{})
	e := v.(*strippedEntry)
	e.once.Do(func() { e.found, e.missed = StrippedGlobals(b.Image, b.Layout) })
	g, ok := e.found[name]
	if !ok {
		return StrippedGlobal{}, false
	}
	g.Addr += b.Image.Bias
	return g, true
}
