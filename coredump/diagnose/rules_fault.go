package diagnose

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/insn"
	"github.com/coreexplain/coreexplain/coredump/memory"
)

// The fault classes of a synchronous signal, decided from the fault
// address, si_code, the registers and the faulting instruction:
// stack-overflow, write-to-readonly, exec-non-executable,
// non-canonical-address, misaligned, bus-error-mmap, illegal-instruction,
// c-divide-error and unmapped-access. One fault gets one class; a fault
// in Go code at a small address is left to the nil-deref rule.
func init() {
	Register(Rule{Name: "fault-class", Run: faultClass})
}

// goNilLimit is the runtime's bound for turning a fault into a nil
// pointer panic (sigpanic: sigcode1 < 0x1000).
const goNilLimit = 0x1000

// faultCtx holds what every fault class looks at.
type faultCtx struct {
	f      *Facts
	ft     *memory.Fault
	in     *insn.Insn
	region *memory.Region
	access insn.Access
	accSrc string
	base   []Evidence
}

func faultClass(f *Facts) []Finding {
	ft := f.Fault()
	if ft == nil {
		return nil
	}
	if ft.InGo && ((ft.Signo == coredump.SIGSEGV && ft.Addr < goNilLimit) || ft.Signo == coredump.SIGFPE) {
		return nil // a nil dereference or a Go divide panic: other rules
	}
	c := &faultCtx{f: f, ft: ft, in: f.faultInsn(ft)}
	c.region = f.Memory().Classify(ft.Addr)
	c.access, c.accSrc = c.accessKind()
	c.base = c.baseEvidence()
	var fd *Finding
	switch ft.Signo {
	case coredump.SIGSEGV:
		fd = c.segv()
	case coredump.SIGBUS:
		fd = c.bus()
	case coredump.SIGILL:
		fd = c.ill()
	case coredump.SIGFPE:
		fd = c.fpe()
	}
	if fd == nil {
		return nil
	}
	fd.Cause = true
	fd.Location = f.faultLocation(ft)
	fd.Evidence = append(append([]Evidence(nil), c.base...), fd.Evidence...)
	return []Finding{*fd}
}

func (c *faultCtx) accessKind() (insn.Access, string) {
	ft := c.ft
	if ft.PC == ft.Addr && ft.Signo == coredump.SIGSEGV {
		return insn.AccessExecute, "the fault address is the pc"
	}
	if a, ok := ft.Access(); ok {
		return a, fmt.Sprintf("page-fault error code %#x", ft.Frame.ErrCode)
	}
	if c.in != nil && c.in.Mem != nil && c.in.Access != insn.AccessUnknown {
		return c.in.Access, "the faulting instruction " + c.in.Text
	}
	if c.in != nil && c.in.StackWrite {
		return insn.AccessWrite, "the faulting instruction " + c.in.Text + " writes to the stack"
	}
	return insn.AccessUnknown, ""
}

func (c *faultCtx) baseEvidence() []Evidence {
	ft := c.ft
	ev := []Evidence{{
		What:   fmt.Sprintf("%s (%s) at address %#x, pc %#x", ft.Signo, ft.CodeName(), ft.Addr, ft.PC),
		Addr:   AddrPtr(ft.Addr),
		Value:  ft.CodeName(),
		Source: ft.Source,
	}}
	if c.in != nil && c.executable(ft.PC) {
		what := "faulting instruction: " + c.in.Text
		if c.in.Mem != nil {
			what += fmt.Sprintf(" (%s %s)", c.in.Access, c.in.Mem)
		}
		ev = append(ev, Evidence{What: what, Addr: AddrPtr(ft.PC), Value: fmt.Sprintf("% x", c.in.Bytes), Source: "code bytes at the pc"})
	}
	if sf := ft.Frame; sf != nil && sf.HasTrap {
		ev = append(ev, Evidence{What: fmt.Sprintf("CPU exception %s, error code %#x", trapName(sf.Trapno), sf.ErrCode),
			Value: fmt.Sprint(sf.Trapno), Source: ft.Source})
	}
	return ev
}

var trapNames = map[uint64]string{0: "#DE divide error", 6: "#UD invalid opcode", 12: "#SS stack fault",
	13: "#GP general protection", 14: "#PF page fault", 17: "#AC alignment check", 19: "#XM SIMD exception"}

func trapName(n uint64) string {
	if s, ok := trapNames[n]; ok {
		return s
	}
	return fmt.Sprintf("trap %d", n)
}

func (c *faultCtx) fn(pc uint64) string {
	fn, _, _ := c.f.codeLocation(pc)
	if fn == "" {
		return fmt.Sprintf("%#x", pc)
	}
	return fn
}

func (c *faultCtx) segv() *Finding {
	ft, r := c.ft, c.region
	if ft.Code == coredump.SI_KERNEL {
		return c.generalProtection()
	}
	if c.access == insn.AccessExecute || !c.executable(ft.PC) {
		return c.badPC()
	}
	if fd := c.stackOverflow(); fd != nil {
		return fd
	}
	if ft.Code == coredump.SEGV_ACCERR && r.Mapping != nil && r.Kind != memory.Reserved && r.Kind != memory.GuardPage {
		if c.access == insn.AccessWrite && !strings.Contains(r.Mapping.Perm, "w") {
			return c.writeReadonly()
		}
	}
	return c.unmapped()
}

func (c *faultCtx) executable(pc uint64) bool {
	m := c.f.Proc.FindMapping(pc)
	return m != nil && m.Perm&coredump.PermExec != 0
}

// heldBy names the register whose value made the faulting address.
func (c *faultCtx) heldBy() (string, []Evidence) {
	in, ft := c.in, c.ft
	if in == nil || in.Mem == nil {
		return "", nil
	}
	if ft.Regs == nil {
		return "", []Evidence{{What: fmt.Sprintf("the address came from operand %s; the registers at the fault are not recorded (a fault in Go code)", in.Mem),
			Source: "the faulting instruction"}}
	}
	var ev []Evidence
	ea, ok := in.Mem.EffectiveAddr(ft.Regs, ft.PC, in.Len)
	if ok && ft.Addr != 0 {
		if ea <= ft.Addr && ft.Addr-ea < uint64(max(in.Mem.Size, 64)) {
			ev = append(ev, Evidence{What: fmt.Sprintf("operand %s computes %#x from the registers at the fault", in.Mem, ea),
				Addr: AddrPtr(ea), Source: ft.Source})
		}
	}
	reg := in.Mem.Base
	if reg == "" || reg == "rip" {
		reg = in.Mem.Index
	}
	if v, ok := insn.RegValue(ft.Regs, reg); ok && reg != "" {
		ev = append(ev, Evidence{What: fmt.Sprintf("register %s held %#x", reg, v), Addr: AddrPtr(v), Value: fmt.Sprintf("%#x", v), Source: ft.Source})
	}
	return reg, ev
}

func (c *faultCtx) unmapped() *Finding {
	ft, r := c.ft, c.region
	reg, ev := c.heldBy()
	acc := c.access.String()
	if c.access == insn.AccessUnknown {
		acc = "access"
	}
	what := "a wild pointer"
	switch r.Kind {
	case memory.NullPage:
		what = "a NULL pointer"
		if ft.Addr != 0 {
			what = fmt.Sprintf("a NULL pointer plus offset %#x", ft.Addr)
		}
	case memory.GuardPage:
		what = "a pointer into a stack guard page"
	case memory.Reserved:
		what = "a pointer into an inaccessible reservation"
	case memory.GoHeap, memory.GoStack:
		what = "a pointer into Go memory that is not in use"
	}
	s := fmt.Sprintf("%s %s at %#x in %s", strings.ToUpper(acc[:1])+acc[1:], "through "+what, ft.Addr, c.fn(ft.PC))
	if reg != "" && ft.Regs != nil {
		v, _ := insn.RegValue(ft.Regs, reg)
		s += fmt.Sprintf(" (%s = %#x)", reg, v)
	}
	fd := &Finding{Class: UnmappedAccess, Summary: s, Confidence: High, Key: keyOf(r.Kind.String(), acc)}
	fd.Evidence = append(fd.Evidence, regionEvidence("fault address", r))
	fd.Evidence = append(fd.Evidence, ev...)
	if c.accSrc != "" {
		fd.Evidence = append(fd.Evidence, Evidence{What: "the access was a " + acc, Value: acc, Source: c.accSrc})
	}
	return fd
}

func keyOf(parts ...string) string { return strings.Join(parts, " ") }

func (c *faultCtx) writeReadonly() *Finding {
	ft, r := c.ft, c.region
	where := r.Summary
	lit := ""
	if r.Image != nil && strings.HasPrefix(r.Image.Section, ".rodata") {
		if s, ok, err := c.f.Proc.ReadCString(ft.Addr, 64); err == nil && ok && printable(s) && len(s) > 0 {
			lit = s
		}
	}
	s := fmt.Sprintf("Write to read-only memory at %#x in %s", ft.Addr, c.fn(ft.PC))
	if lit != "" {
		s += fmt.Sprintf(": it holds the string literal %q", lit)
	} else if r.Image != nil && r.Image.Section != "" {
		s += " (" + r.Image.Section + ")"
	}
	fd := &Finding{Class: WriteToReadonly, Summary: s, Confidence: High, Key: keyOf(sectionOf(r))}
	fd.Evidence = append(fd.Evidence, Evidence{What: "the address is in " + where, Addr: AddrPtr(ft.Addr),
		Value: r.Mapping.Perm, Source: "mappings and section headers"})
	if lit != "" {
		fd.Evidence = append(fd.Evidence, Evidence{What: "bytes at the address: a C string literal", Addr: AddrPtr(ft.Addr),
			Value: fmt.Sprintf("%q", lit), Source: "the image file's " + r.Image.Section})
	}
	_, ev := c.heldBy()
	fd.Evidence = append(fd.Evidence, ev...)
	fd.Evidence = append(fd.Evidence, Evidence{What: "the access was a write", Value: "write", Source: c.accSrc})
	return fd
}

func sectionOf(r *memory.Region) string {
	if r.Image != nil && r.Image.Section != "" {
		return r.Image.Section
	}
	return r.Kind.String()
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return false
		}
	}
	return true
}

// badPC explains a jump or call to a pc that is not code.
func (c *faultCtx) badPC() *Finding {
	ft := c.ft
	pcR := c.f.Memory().Classify(ft.PC)
	class := ExecNonExecutable
	if pcR.Mapping == nil {
		class = UnmappedAccess
	}
	s := fmt.Sprintf("Jumped to %#x, which is not code: %s", ft.PC, pcR.Summary)
	fd := &Finding{Class: class, Confidence: High, Key: keyOf("execute", pcR.Kind.String())}
	fd.Evidence = append(fd.Evidence, regionEvidence("pc", pcR))
	if pcR.Mapping != nil {
		fd.Evidence = append(fd.Evidence, Evidence{What: "the mapping holding the pc is not executable", Addr: AddrPtr(ft.PC),
			Value: pcR.Mapping.Perm, Source: "core program headers"})
	}
	if c.access == insn.AccessExecute {
		fd.Evidence = append(fd.Evidence, Evidence{What: "the access was an instruction fetch", Value: "execute", Source: c.accSrc})
	}
	if caller, ev := c.callerOf(); caller != "" {
		s += "; called from " + caller + " (a corrupt function pointer or return address)"
		fd.Evidence = append(fd.Evidence, ev...)
		fd.Location = nil
	}
	fd.Summary = s
	return fd
}

// callerOf finds who transferred control to a bad pc: right after a call
// the return address is at the top of the stack, just after a call
// instruction.
func (c *faultCtx) callerOf() (string, []Evidence) {
	ft := c.ft
	if ft.Regs == nil {
		return "", nil
	}
	sp := ft.Regs.SP()
	ra, err := c.f.Proc.ReadUint64(sp)
	if err != nil || !c.executable(ra) {
		return "", nil
	}
	var code [16]byte
	n, _ := c.f.Proc.ReadMemory(code[:], ra-16)
	if n < 16 {
		return "", nil
	}
	for k := 2; k <= 7; k++ {
		in, err := insn.Decode(c.f.Proc.Arch, code[16-k:], ra-uint64(k))
		if err != nil || !in.Call || in.Len != k {
			continue
		}
		caller := c.fn(ra - uint64(k))
		ev := []Evidence{{What: fmt.Sprintf("return address %#x at the top of the stack follows `%s` in %s", ra, in.Text, caller),
			Addr: AddrPtr(sp), Value: fmt.Sprintf("%#x", ra), Source: ft.Source}}
		if in.Target == "" && in.Mem == nil {
			// A direct call: the bad jump happened inside its callee, or
			// in a function the callee tail-called.
			if im, sym, ok := c.f.Proc.Symbolize(callTarget(in)); ok && im != nil {
				ev[0].What += fmt.Sprintf(": the bad call or jump was made in %s or a function it tail-called", sym.Name)
				return sym.Name, ev
			}
			return caller, ev
		}
		if in.Target != "" {
			if v, ok := insn.RegValue(ft.Regs, in.Target); ok {
				ev = append(ev, Evidence{What: fmt.Sprintf("the call went through register %s = %#x", in.Target, v),
					Addr: AddrPtr(v), Value: fmt.Sprintf("%#x", v), Source: ft.Source})
			}
		} else if in.Mem != nil {
			if ea, ok := in.Mem.EffectiveAddr(ft.Regs, ra-uint64(k), in.Len); ok {
				r := c.f.Memory().Classify(ea)
				ev = append(ev, Evidence{What: fmt.Sprintf("the function pointer was loaded from %s = %s", in.Mem, r.Summary),
					Addr: AddrPtr(ea), Source: ft.Source})
			}
		}
		return c.fn(ra - uint64(k)), ev
	}
	return "", nil
}

// callTarget is the destination of a direct call, from its rel32.
func callTarget(in *insn.Insn) uint64 {
	if len(in.Bytes) != 5 || in.Bytes[0] != 0xe8 {
		return 0
	}
	rel := int32(uint32(in.Bytes[1]) | uint32(in.Bytes[2])<<8 | uint32(in.Bytes[3])<<16 | uint32(in.Bytes[4])<<24)
	return uint64(int64(in.PC) + 5 + int64(rel))
}

func (c *faultCtx) stackOverflow() *Finding {
	ft, r := c.ft, c.region
	sp := ft.SP()
	near := sp != 0 && ft.Addr <= sp+8 && sp-ft.Addr < 1<<16
	guard := r.Kind == memory.GuardPage
	if !guard && !(near && c.in != nil && c.in.StackWrite && (r.Kind == memory.Unmapped || r.Kind == memory.Reserved)) {
		return nil
	}
	if !guard && !near {
		return nil
	}
	fd := &Finding{Class: StackOverflow, Confidence: High}
	owner := "the thread"
	if r.Stack != nil {
		owner = r.Stack.Owner()
	}
	fd.Evidence = append(fd.Evidence, regionEvidence("fault address", r))
	if sp != 0 {
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("stack pointer %#x is %d bytes above the fault address", sp, int64(sp-ft.Addr)),
			Addr: AddrPtr(sp), Source: ft.Source})
	}
	fn, count, cycle := c.recursion()
	switch {
	case fn != "":
		fd.Summary = fmt.Sprintf("Stack overflow of %s: %s recursed until the stack ran into its guard page", owner, fn)
		fd.Key = keyOf("recursion", fn)
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("%s appears %d times in the first %d frames unwound from the fault (%s)",
			fn, count, recursionDepth, cycle), Value: fn, Source: "call frame information of the stack"})
	default:
		fd.Summary = fmt.Sprintf("Stack overflow of %s in %s: the stack ran into its guard page", owner, c.fn(ft.PC))
		fd.Key = keyOf("stack", c.fn(ft.PC))
		fd.Confidence = Medium
		fd.Why = "no repeating function found in the unwound frames"
	}
	return fd
}

// recursionDepth is how many frames are unwound to find a recursion.
const recursionDepth = 256

// recursion unwinds the faulting stack and returns the function that
// repeats most, with its count and the repeating cycle.
func (c *faultCtx) recursion() (fn string, count int, cycle string) {
	ft := c.ft
	if ft.Regs == nil {
		return "", 0, ""
	}
	names := c.f.unwindNames(ft.Regs, recursionDepth)
	counts := map[string]int{}
	for _, n := range names {
		counts[n]++
	}
	for n, k := range counts {
		if k > count || k == count && n < fn {
			fn, count = n, k
		}
	}
	if count < 3 {
		return "", 0, ""
	}
	// The cycle: the names between two occurrences of fn.
	first, second := -1, -1
	for i, n := range names {
		if n == fn {
			if first < 0 {
				first = i
			} else {
				second = i
				break
			}
		}
	}
	if second > first && first >= 0 {
		cyc := append(append([]string(nil), names[first:second]...), fn)
		cycle = strings.Join(cyc, " ← ")
		if len(cyc) == 2 {
			cycle = fn + " calls itself"
		}
	}
	return fn, count, cycle
}

// unwindNames unwinds C frames from regs with call frame information and
// names each frame's function.
func (f *Facts) unwindNames(regs *coredump.Registers, maxFrames int) []string {
	var out []string
	w := f.Proc.WalkCFI(coredump.NewDwarfRegs(regs), true, maxFrames)
	for w.Next() {
		sp := w.Regs().SP()
		fn, _, _ := f.codeLocation(w.Regs().PC())
		if fn == "" {
			break
		}
		out = append(out, fn)
		step, err := w.Unwind()
		if err != nil || step.Caller.PC() == 0 || step.Caller.SP() <= sp {
			break
		}
	}
	return out
}

func (c *faultCtx) generalProtection() *Finding {
	ft, in := c.ft, c.in
	if in == nil {
		return c.unmapped()
	}
	if in.Halt {
		return nil // a deliberate crash (musl's a_crash): the C runtime's rules
	}
	fd := &Finding{Confidence: High}
	var target uint64
	var how string
	switch {
	case in.Mem != nil && ft.Regs != nil:
		ea, ok := in.Mem.EffectiveAddr(ft.Regs, ft.PC, in.Len)
		if !ok {
			break
		}
		target, how = ea, fmt.Sprintf("operand %s", in.Mem)
		if in.AlignRequired > 0 && ea%uint64(in.AlignRequired) != 0 && canonical(ea) {
			fd.Class = Misaligned
			fd.Summary = fmt.Sprintf("Misaligned %d-byte vector access at %#x in %s: %s needs %d-byte alignment (often a stack misaligned by C code or a bad cast)",
				in.Mem.Size, ea, c.fn(ft.PC), in.Op, in.AlignRequired)
			fd.Key = keyOf(in.Op, Misaligned.String())
			fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("%s computes %#x, which is %d bytes past a %d-byte boundary",
				in.Mem, ea, ea%uint64(in.AlignRequired), in.AlignRequired), Addr: AddrPtr(ea), Source: ft.Source})
			return fd
		}
	case (in.Call || in.Jump) && in.Target != "" && ft.Regs != nil:
		v, ok := insn.RegValue(ft.Regs, in.Target)
		if ok {
			target, how = v, "jump target register "+in.Target
		}
	case in.Ret && ft.Regs != nil:
		v, err := c.f.Proc.ReadUint64(ft.Regs.SP())
		if err == nil {
			target, how = v, "return address at the top of the stack"
		}
	}
	if how != "" && !canonical(target) {
		fd.Class = NonCanonicalAddress
		fd.Summary = fmt.Sprintf("Use of non-canonical address %#x in %s (from %s): the kernel reports such faults as SIGSEGV with address 0; the pointer is corrupt",
			target, c.fn(ft.PC), how)
		fd.Key = keyOf(in.Op, "non-canonical")
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("%s computes %#x, which is not canonical (bits 47-63 differ)", how, target),
			Addr: AddrPtr(target), Value: fmt.Sprintf("%#x", target), Source: ft.Source})
		if reg, ev := c.heldBy(); reg != "" {
			fd.Evidence = append(fd.Evidence, ev...)
		}
		return fd
	}
	// A #GP for another reason (privileged instruction, segment): say what
	// is known.
	fd = c.unmapped()
	fd.Confidence, fd.Why = Low, "a general-protection fault (SI_KERNEL) without a non-canonical or misaligned operand"
	return fd
}

func canonical(a uint64) bool { return a < 1<<47 || a >= 0xffff800000000000 }

func (c *faultCtx) bus() *Finding {
	ft, r := c.ft, c.region
	switch ft.Code {
	case coredump.BUS_ADRALN:
		return &Finding{Class: Misaligned, Confidence: High, Key: "bus-adraln",
			Summary:  fmt.Sprintf("Misaligned access at %#x in %s (SIGBUS BUS_ADRALN)", ft.Addr, c.fn(ft.PC)),
			Evidence: []Evidence{regionEvidence("fault address", r)}}
	case coredump.BUS_MCEERR_AR, coredump.BUS_MCEERR_AO:
		return &Finding{Class: BusErrorMmap, Confidence: High, Key: "hardware-memory-error",
			Summary:  fmt.Sprintf("Hardware memory error (machine check) at %#x: the page is poisoned; not a software bug", ft.Addr),
			Evidence: []Evidence{regionEvidence("fault address", r)}}
	}
	fd := &Finding{Class: BusErrorMmap, Confidence: High}
	fd.Evidence = append(fd.Evidence, regionEvidence("fault address", r))
	if r.Mapping == nil || r.Mapping.File == "" {
		fd.Summary = fmt.Sprintf("Bus error at %#x in %s (%s)", ft.Addr, c.fn(ft.PC), ft.CodeName())
		fd.Confidence, fd.Why = Medium, "the address is not in a file mapping"
		fd.Key = "bus-error"
		return fd
	}
	off := r.Mapping.FileOffset
	fd.Summary = fmt.Sprintf("Bus error: %s read %s at file offset %#x through a memory mapping", c.fn(ft.PC), r.Mapping.File, off)
	fd.Key = keyOf("mmap", filepath.Base(r.Mapping.File))
	host := filepath.Join(c.f.Proc.Sysroot, r.Mapping.File)
	if st, err := os.Stat(host); err == nil {
		if uint64(st.Size()) <= off {
			fd.Summary += fmt.Sprintf(", past the end of the file (%d bytes now): the file was truncated while mapped", st.Size())
		}
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("%s is %d bytes on this machine; the fault is at file offset %#x", r.Mapping.File, st.Size(), off),
			Value: fmt.Sprint(st.Size()), Source: "stat of the mapped file"})
	} else {
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("%s cannot be examined here (%v); SIGBUS on a file mapping means the page lies past the file's end", r.Mapping.File, err),
			Source: "stat of the mapped file"})
	}
	return fd
}

func (c *faultCtx) ill() *Finding {
	ft, in := c.ft, c.in
	fd := &Finding{Class: IllegalInstruction, Confidence: High}
	switch {
	case in == nil:
		fd.Summary = fmt.Sprintf("Illegal instruction at %#x (%s): the code bytes cannot be read", ft.PC, ft.CodeName())
		fd.Confidence = Medium
		fd.Key = "unreadable"
	case in.Trap:
		fd.Summary = fmt.Sprintf("Deliberate trap (%s) in %s: __builtin_trap(), an UBSan or bounds check, or an unreachable() that was reached", in.Text, c.fn(ft.PC))
		fd.Key = keyOf("trap", c.fn(ft.PC))
	case in.Vector != "":
		fd.Summary = fmt.Sprintf("%s instruction in %s, but this CPU does not support %s: the code was built for a newer CPU (-march=native, -mavx)",
			in.Vector, c.fn(ft.PC), in.Vector)
		fd.Key = keyOf(strings.ToLower(in.Vector), c.fn(ft.PC))
		hw, _ := c.f.Proc.Auxv.Lookup(coredump.AT_HWCAP2)
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("the instruction is %s-encoded; AT_HWCAP2 = %#x", in.Vector, hw),
			Value: in.Vector, Source: "instruction prefix bytes and the auxiliary vector"})
	default:
		fd.Summary = fmt.Sprintf("Illegal instruction %s in %s (%s)", in.Text, c.fn(ft.PC), ft.CodeName())
		fd.Key = keyOf(in.Op, c.fn(ft.PC))
		fd.Confidence, fd.Why = Medium, "the instruction decodes; the CPU may lack the extension it needs, or the pc is misaligned"
	}
	return fd
}

func (c *faultCtx) fpe() *Finding {
	ft, in := c.ft, c.in
	if ft.Code != coredump.FPE_INTDIV && !(in != nil && in.Divide) {
		return nil
	}
	fd := &Finding{Class: CDivideError, Confidence: High, Key: keyOf("divide", c.fn(ft.PC))}
	fd.Summary = fmt.Sprintf("Integer division by zero in C code %s", c.fn(ft.PC))
	if ft.Code == coredump.FPE_INTOVF || (in != nil && in.Divide && c.divisor() != nil && *c.divisor() != 0) {
		fd.Summary = fmt.Sprintf("Integer division overflow in C code %s (e.g. INT_MIN / -1)", c.fn(ft.PC))
	}
	if d := c.divisor(); d != nil {
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("the divisor of `%s` is %d", in.Text, int64(*d)),
			Value: fmt.Sprint(int64(*d)), Source: ft.Source})
	}
	return fd
}

// divisor reads the divide instruction's divisor from the registers or
// memory at the fault.
func (c *faultCtx) divisor() *uint64 {
	in, ft := c.in, c.ft
	if in == nil || !in.Divide || ft.Regs == nil {
		return nil
	}
	if in.Mem != nil {
		ea, ok := in.Mem.EffectiveAddr(ft.Regs, ft.PC, in.Len)
		if !ok {
			return nil
		}
		b := make([]byte, max(in.Mem.Size, 1))
		if len(b) > 8 {
			return nil
		}
		if _, err := c.f.Proc.ReadMemory(b, ea); err != nil {
			return nil
		}
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		return &v
	}
	// div reg: the operand is the last word of the text.
	f := strings.FieldsFunc(in.Text, func(r rune) bool { return r == ' ' || r == ',' || r == '%' })
	if len(f) == 0 {
		return nil
	}
	if v, ok := insn.RegValue(ft.Regs, f[len(f)-1]); ok {
		return &v
	}
	return nil
}

func init() {
	Register(Rule{Name: "go-stack-overflow", Run: goStackOverflow})
}

// goStackOverflow finds a goroutine whose stack cannot grow any more:
// newstack throws "stack overflow" when doubling it would pass
// runtime.maxstacksize (1 GB by default, debug.SetMaxStack).
func goStackOverflow(f *Facts) []Finding {
	sp := f.Memory()
	bin := sp.Go()
	if bin == nil {
		return nil
	}
	addr, ok := bin.Symbol("runtime.maxstacksize")
	if !ok {
		return nil
	}
	limit, err := f.Proc.ReadUint64(addr)
	if err != nil || limit == 0 {
		return nil
	}
	var big *memory.StackInfo
	for _, st := range sp.GoroutineStacks() {
		if size := uint64(st.Hi - st.Lo); size*2 > limit && (big == nil || size > uint64(big.Hi-big.Lo)) {
			big = st
		}
	}
	if big == nil {
		return nil
	}
	size := uint64(big.Hi - big.Lo)
	fd := Finding{Class: StackOverflow, Cause: true, Confidence: High,
		Location: &Location{Goroutine: big.Goroutine}}
	fd.Evidence = append(fd.Evidence,
		Evidence{What: fmt.Sprintf("goroutine %d's stack is %d bytes (%s-%s); growing it to %d bytes would pass runtime.maxstacksize = %d",
			big.Goroutine, size, big.Lo, big.Hi, 2*size, limit), Addr: AddrPtr(uint64(big.Lo)), Value: fmt.Sprint(size), Source: "g.stack and runtime.maxstacksize"})
	frames, err := memory.GoroutineFrames(f.Proc, big.Goroutine)
	counts := map[string]int{}
	var names []string
	for _, fr := range frames {
		if fr.Function == "" || strings.HasPrefix(fr.Function, "runtime.") {
			continue
		}
		counts[fr.Function]++
		names = append(names, fr.Function)
	}
	fn, n := "", 0
	for name, k := range counts {
		if k > n || k == n && name < fn {
			fn, n = name, k
		}
	}
	if err != nil || n < 3 {
		fd.Summary = fmt.Sprintf("Go stack overflow: goroutine %d's stack reached the %d-byte limit", big.Goroutine, limit)
		fd.Key = "go stack"
		return []Finding{fd}
	}
	fd.Summary = fmt.Sprintf("Go stack overflow: %s recursed until goroutine %d's stack reached the %d-byte limit", fn, big.Goroutine, limit)
	fd.Key = keyOf("recursion", fn)
	fd.Location.Function = fn
	fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("%s appears %d times in the top %d Go frames of goroutine %d", fn, n, len(frames), big.Goroutine),
		Value: fn, Source: "DWARF unwinding of the goroutine's stack"})
	return []Finding{fd}
}
