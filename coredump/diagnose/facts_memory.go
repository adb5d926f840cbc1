package diagnose

import (
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/insn"
	"github.com/coreexplain/coreexplain/coredump/memory"
)

// Memory returns the address-space view of the process: what is at an
// address, slice headers, the fault the process died of.
func (f *Facts) Memory() *memory.Space { return memory.For(f.Proc) }

// Fault returns the synchronous fault the process died of, nil when it
// did not die of one.
func (f *Facts) Fault() *memory.Fault { return f.Memory().CrashFault() }

// faultInsn decodes the faulting instruction, nil when its bytes cannot be
// read (the pc itself is bad).
func (f *Facts) faultInsn(ft *memory.Fault) *insn.Insn {
	v := f.Proc.Cached(faultInsnKey{}, func() any {
		in, err := insn.DecodeAt(f.Proc, ft.PC)
		if err != nil {
			return err
		}
		return in
	})
	in, _ := v.(*insn.Insn)
	return in
}

type faultInsnKey struct{}

// codeLocation names the code at pc: function (symbol or DWARF), file and
// line when the executable's DWARF covers it.
func (f *Facts) codeLocation(pc uint64) (fn, file string, line int) {
	if t, err := f.Proc.Delve(); err == nil && f.Proc.Exe != nil && f.Proc.Exe.Contains(pc) {
		if fl, ln, fun := t.BinInfo().PCToLine(pc); fun != nil {
			fn, file, line = fun.Name, fl, ln
		}
	}
	im, sym, ok := f.Proc.Symbolize(pc)
	if ok && im.IsExe {
		// The symbol table names C functions as C does; Delve prefixes
		// them with "C.".
		return sym.Name, file, line
	}
	if fn != "" {
		return fn, file, line
	}
	if !ok {
		if im != nil {
			return fmt.Sprintf("%s+%#x", im.Name(), pc-im.Bias), "", 0
		}
		return "", "", 0
	}
	if im.IsExe {
		return sym.Name, "", 0
	}
	return im.Name() + "`" + sym.Name, "", 0
}

// inlinedAt reports the innermost function inlined at pc, from the
// pclntab's inline tree (funcdata _FUNCDATA_InlTree and pcdata
// _PCDATA_InlTreeIndex, runtime/symtabinl.go), with its file and line;
// inl is false when pc is not in an inlined call or not in Go code. pc is
// the instruction itself, not a return address: it is not backed up.
func (f *Facts) inlinedAt(pc uint64) (fn, file string, line int, inl bool) {
	r, err := f.Go()
	if err != nil || r.Funcs == nil {
		return "", "", 0, false
	}
	fun, ok := r.Funcs.FuncAt(pc)
	if !ok {
		return "", "", 0, false
	}
	lf := fun.Logical(pc, nil)
	if len(lf) < 2 || !lf[0].Inlined || lf[0].Name == "" {
		return "", "", 0, false
	}
	return lf[0].Name, lf[0].File, lf[0].Line, true
}

// faultLocation is the Location of the faulting instruction.
func (f *Facts) faultLocation(ft *memory.Fault) *Location {
	loc := &Location{TID: ft.TID, Goroutine: ft.Goroutine, PC: AddrPtr(ft.PC)}
	if name, fl, ln, inl := f.inlinedAt(ft.PC); inl {
		// Delve and the symbol table name the function the code belongs
		// to; when the faulting instruction lies in a call the compiler
		// inlined, the innermost function is the one whose source the
		// line is in.
		loc.Function, loc.File, loc.Line = name, fl, ln
		return loc
	}
	loc.Function, loc.File, loc.Line = f.codeLocation(ft.PC)
	return loc
}

// regionEvidence turns a classification into evidence.
func regionEvidence(what string, r *memory.Region) Evidence {
	a := coredump.Addr(r.Addr)
	return Evidence{What: what + ": " + r.Summary, Addr: &a, Value: r.Kind.String(), Source: "address classification (mappings, Go heap, stacks)"}
}
