package goruntime

import (
	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/insn"
	"golang.org/x/arch/x86/x86asm"
)

// A binary linked with -s has no symbol table. Most runtime globals are
// found from the code patterns of globals_stripped.go (Binary.Global);
// the state-name tables goroutineheader indexes (gStatusStrings,
// waitReasonStrings) are found here among its RIP-relative operands,
// each candidate checked against what the table must hold.

// maxDecode bounds the code decoded per function.
const maxDecode = 1 << 14

// funcCode reads the code of the function [addr, addr+size) for a sweep;
// nil when the size is 0 or above maxDecode or the code cannot all be
// read.
func funcCode(p *coredump.Process, addr, size uint64) *insn.Code {
	c, err := insn.ReadCode(p, p.Arch, addr, addr+size, maxDecode)
	if err != nil {
		return nil
	}
	return c
}

// dataRefs returns the addresses a function's instructions refer to
// pc-relatively as data (not calls or jumps), in order, without
// duplicates.
func (r *Runtime) dataRefs(fn string) []uint64 {
	f, ok := r.Funcs.FuncByName(fn)
	if !ok {
		return nil
	}
	seen := map[uint64]bool{}
	var out []uint64
	for ref := range funcCode(r.Proc, f.Entry, f.End()-f.Entry).Refs() {
		if ref.Kind != insn.RefLoad && ref.Kind != insn.RefAddr || seen[ref.Target] {
			continue
		}
		seen[ref.Target] = true
		out = append(out, ref.Target)
	}
	return out
}

// discovered holds globals found in code, by symbol name.
type discovered struct {
	addr, size uint64
}

// discover finds a runtime global that neither the symbol table nor the
// Binary's code patterns (StrippedGlobals) give: the state-name tables,
// recognised by their contents.
func (r *Runtime) discover(name string) (uint64, uint64, bool) {
	if r.Funcs == nil {
		return 0, 0, false
	}
	if r.found == nil {
		r.found = map[string]discovered{}
	}
	if d, ok := r.found[name]; ok {
		return d.addr, d.size, d.addr != 0
	}
	r.found[name] = discovered{} // no recursion through validators
	switch name {
	case "runtime.gStatusStrings", "runtime.waitReasonStrings":
		r.discoverStateNames()
	}
	d := r.found[name]
	return d.addr, d.size, d.addr != 0
}

// stringArrayLen counts the leading well-formed string headers at a:
// empty, or a short printable string.
func (r *Runtime) stringArrayLen(a uint64, max int) (n int, first []string) {
	for ; n < max; n++ {
		ptr, err1 := r.Proc.ReadUint64(a + 16*uint64(n))
		l, err2 := r.Proc.ReadUint64(a + 16*uint64(n) + 8)
		if err1 != nil || err2 != nil || l > 64 || (l == 0) != (ptr == 0) && l != 0 {
			return n, first
		}
		s, err := r.readStringData(ptr, l)
		if err != nil || (l > 0 && !printable(s)) {
			return n, first
		}
		first = append(first, s)
	}
	return n, first
}

// discoverStateNames finds gStatusStrings (it starts "idle", "runnable",
// "running") and waitReasonStrings (it starts "" and then wait reasons)
// among goroutineheader's operands.
func (r *Runtime) discoverStateNames() {
	for _, a := range r.dataRefs("runtime.goroutineheader") {
		n, s := r.stringArrayLen(a, 256)
		switch {
		case n >= 3 && s[0] == "idle" && s[1] == "runnable" && s[2] == "running":
			// The states end where the names stop being states.
			k := 0
			for k < n && (s[k] == "" || isStateName(s[k])) {
				k++
			}
			r.found["runtime.gStatusStrings"] = discovered{a, 16 * uint64(k)}
		case n >= 8 && s[0] == "" && s[1] != "":
			// The array's length is what String compares the reason
			// with: the largest such constant the entries can hold.
			k := 0
			for _, c := range r.cmpImmediates("runtime.goroutineheader") {
				if c >= 8 && c <= int64(n) && int(c) > k {
					k = int(c)
				}
			}
			if k > 0 {
				r.found["runtime.waitReasonStrings"] = discovered{a, 16 * uint64(k)}
			}
		}
	}
}

func isStateName(s string) bool {
	for _, v := range gStatusFallback(MaxVersion) {
		if v == s {
			return true
		}
	}
	return false
}

// cmpImmediates returns the constants a function compares with (amd64).
func (r *Runtime) cmpImmediates(fn string) []int64 {
	f, ok := r.Funcs.FuncByName(fn)
	if !ok {
		return nil
	}
	var out []int64
	for in := range funcCode(r.Proc, f.Entry, f.End()-f.Entry).Insts() {
		if in.X86.Op != x86asm.CMP {
			continue
		}
		for _, a := range in.X86.Args {
			if imm, ok := a.(x86asm.Imm); ok {
				out = append(out, int64(imm))
			}
		}
	}
	return out
}
