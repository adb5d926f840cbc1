package coredump

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/go-delve/delve/pkg/dwarf/op"
)

// DwarfRegs is a register set keyed by DWARF register number, with a mark
// for the registers whose value is known. Unwinding works on it.
type DwarfRegs struct {
	Arch  Arch
	Val   [64]uint64
	Valid uint64 // bit n set when Val[n] is known
}

// NewDwarfRegs converts a thread's registers.
func NewDwarfRegs(r *Registers) *DwarfRegs {
	d := &DwarfRegs{Arch: r.Arch}
	for n, v := range r.DwarfRegs() {
		d.Set(n, v)
	}
	return d
}

// Get returns register n and whether it is known.
func (d *DwarfRegs) Get(n int) (uint64, bool) {
	if n < 0 || n >= 64 || d.Valid&(1<<n) == 0 {
		return 0, false
	}
	return d.Val[n], true
}

// Set records register n.
func (d *DwarfRegs) Set(n int, v uint64) {
	if n >= 0 && n < 64 {
		d.Val[n] = v
		d.Valid |= 1 << n
	}
}

// PC, SP and FP return the registers with those roles (0 when unknown).
func (d *DwarfRegs) PC() uint64 { v, _ := d.Get(d.Arch.dwarfPC()); return v }
func (d *DwarfRegs) SP() uint64 { v, _ := d.Get(d.Arch.dwarfSP()); return v }
func (d *DwarfRegs) FP() uint64 { v, _ := d.Get(d.Arch.dwarfFP()); return v }

// SetPC, SetSP and SetFP set the registers with those roles.
func (d *DwarfRegs) SetPC(v uint64) { d.Set(d.Arch.dwarfPC(), v) }
func (d *DwarfRegs) SetSP(v uint64) { d.Set(d.Arch.dwarfSP(), v) }
func (d *DwarfRegs) SetFP(v uint64) { d.Set(d.Arch.dwarfFP(), v) }

// calleeSaved lists the registers a call preserves (System V psABI; AAPCS64),
// which keep their value across an unwind step without a CFI rule.
func (a Arch) calleeSaved() []int {
	if a == ArchARM64 {
		return []int{19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29}
	}
	return []int{3, 6, 12, 13, 14, 15} // rbx rbp r12-r15
}

type cfiTable struct {
	fdes frame.FrameDescriptionEntries
}

// ErrNoCFI is returned by UnwindCFI when no call frame information covers
// the pc.
var ErrNoCFI = errors.New("no call frame information for pc")

// ErrOutermost is returned by UnwindCFI for a frame whose CFI leaves the
// return address undefined: the outermost frame of a thread (clone,
// _start), the natural end of its stack.
var ErrOutermost = errors.New("return address unknown")

func (im *Image) cfiTable() (*cfiTable, error) {
	im.cfiOnce.Do(func() {
		t := &cfiTable{}
		var errs []string
		for _, name := range []string{".eh_frame", ".debug_frame"} {
			sec, data, err := im.Section(name)
			if err != nil || len(data) == 0 {
				continue
			}
			ehAddr := uint64(0)
			if name == ".eh_frame" {
				ehAddr = sec.Addr
			}
			fdes, err := parseCFI(data, im.Bias, ehAddr)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			}
			t.fdes = t.fdes.Append(fdes)
		}
		if len(t.fdes) == 0 {
			im.cfiErr = fmt.Errorf("%s: no usable .eh_frame or .debug_frame (%s)", im.Name(), strings.Join(errs, "; "))
			if _, err := im.ELF(); err != nil {
				im.cfiErr = err
			}
			return
		}
		im.cfi = t
	})
	return im.cfi, im.cfiErr
}

// parseCFI is frame.Parse with panics (malformed sections) turned into errors.
func parseCFI(data []byte, bias, ehAddr uint64) (fdes frame.FrameDescriptionEntries, err error) {
	defer func() {
		if r := recover(); r != nil {
			fdes, err = nil, fmt.Errorf("malformed call frame information: %v", r)
		}
	}()
	return frame.Parse(data, le, bias, 8, ehAddr)
}

// CFIStep is one frame unwound with call frame information.
type CFIStep struct {
	Caller      *DwarfRegs // the caller's registers
	CFA         uint64
	SignalFrame bool // the frame is a signal trampoline (CIE augmentation "S")
}

// UnwindCFI unwinds one C frame: given the registers of a frame whose pc
// lies in an image with .eh_frame or .debug_frame, it returns the caller's
// registers. exact says whether regs.PC is the exact pc of the frame (the
// innermost frame, or a frame interrupted by a signal) rather than a return
// address, which points after the call instruction.
func (p *Process) UnwindCFI(regs *DwarfRegs, exact bool) (*CFIStep, error) {
	pc := regs.PC()
	im := p.FindImage(pc)
	if im == nil {
		return nil, fmt.Errorf("pc %#x is in no image: %w", pc, ErrNoCFI)
	}
	t, err := im.cfiTable()
	if err != nil {
		return nil, err
	}
	look := pc
	if !exact && look > 0 {
		look--
	}
	fde, err := t.fdes.FDEForPC(look)
	if err != nil {
		return nil, fmt.Errorf("%s: pc %#x: %w", im.Name(), pc, ErrNoCFI)
	}
	fc, err := establishFrame(fde, look)
	if err != nil {
		return nil, fmt.Errorf("%s: pc %#x: %w", im.Name(), pc, err)
	}
	step := &CFIStep{Caller: &DwarfRegs{Arch: regs.Arch}, SignalFrame: strings.Contains(fde.CIE.Augmentation, "S")}
	switch fc.CFA.Rule {
	case frame.RuleCFA:
		base, ok := regs.Get(int(fc.CFA.Reg))
		if !ok {
			return nil, fmt.Errorf("%s: pc %#x: CFA register %d unknown", im.Name(), pc, fc.CFA.Reg)
		}
		step.CFA = uint64(int64(base) + fc.CFA.Offset)
	case frame.RuleExpression, frame.RuleValExpression:
		v, err := p.evalCFIExpr(regs, 0, fc.CFA.Expression)
		if err != nil {
			return nil, fmt.Errorf("%s: pc %#x: CFA expression: %w", im.Name(), pc, err)
		}
		step.CFA = v
	default:
		return nil, fmt.Errorf("%s: pc %#x: unsupported CFA rule %d", im.Name(), pc, fc.CFA.Rule)
	}
	for _, n := range regs.Arch.calleeSaved() {
		if v, ok := regs.Get(n); ok {
			step.Caller.Set(n, v)
		}
	}
	for n, rule := range fc.Regs {
		if n >= 64 {
			continue
		}
		v, ok, err := p.applyRule(regs, step.CFA, rule)
		if err != nil {
			return nil, fmt.Errorf("%s: pc %#x: register %d: %w", im.Name(), pc, n, err)
		}
		if ok {
			step.Caller.Set(int(n), v)
		} else {
			step.Caller.Valid &^= 1 << n
		}
	}
	ra, ok := step.Caller.Get(int(fc.RetAddrReg))
	if !ok {
		if _, has := fc.Regs[fc.RetAddrReg]; !has && regs.Arch == ArchARM64 {
			ra, ok = regs.Get(30) // lr still holds it in a leaf
		}
	}
	if !ok {
		return nil, fmt.Errorf("%s: pc %#x: %w", im.Name(), pc, ErrOutermost)
	}
	step.Caller.SetPC(ra)
	if _, has := fc.Regs[uint64(regs.Arch.dwarfSP())]; !has {
		step.Caller.SetSP(step.CFA)
	}
	return step, nil
}

// CFIWalk walks a stack from the innermost frame outward, one frame at a
// time, with call frame information; a caller that finds a frame's caller
// by other evidence (a signal frame's layout, a frame pointer, the Go
// pclntab) continues the walk from there with Resume. The walk is bounded:
// it visits at most max frames and stops at a frame it has visited (the
// same pc and sp), so a corrupt stack can neither loop nor run on.
//
//	w := p.WalkCFI(NewDwarfRegs(t.Regs), true, 64)
//	for w.Next() {
//		// the frame at w.Regs()
//		if _, err := w.Unwind(); err != nil {
//			break // or Resume from other evidence
//		}
//	}
type CFIWalk struct {
	p     *Process
	regs  *DwarfRegs
	exact bool
	max   int
	n     int
	seen  map[[2]uint64]bool
}

// WalkCFI starts a walk at the frame with registers regs; exact says
// whether regs.PC() is the exact pc (see UnwindCFI). max bounds the
// frames Next visits.
func (p *Process) WalkCFI(regs *DwarfRegs, exact bool, max int) *CFIWalk {
	return &CFIWalk{p: p, regs: regs, exact: exact, max: max}
}

// Next reports whether the current frame is one to visit: it has a pc, the
// walk has not visited it, and fewer than max frames were visited.
func (w *CFIWalk) Next() bool {
	if w.n >= w.max || w.regs == nil {
		return false
	}
	key := [2]uint64{w.regs.PC(), w.regs.SP()}
	if key[0] == 0 || w.seen[key] {
		return false
	}
	if w.seen == nil {
		w.seen = map[[2]uint64]bool{}
	}
	w.seen[key] = true
	w.n++
	return true
}

// Regs are the current frame's registers; Exact says whether its pc is
// exact rather than a return address.
func (w *CFIWalk) Regs() *DwarfRegs { return w.regs }
func (w *CFIWalk) Exact() bool      { return w.exact }

// Unwind steps from the current frame to its caller with call frame
// information, which becomes the current frame: exact when the step left
// a signal trampoline (its caller is the interrupted context). On error
// (ErrNoCFI, ErrOutermost, unreadable memory) the current frame stays.
func (w *CFIWalk) Unwind() (*CFIStep, error) {
	step, err := w.p.UnwindCFI(w.regs, w.exact)
	if err != nil {
		return nil, err
	}
	w.regs, w.exact = step.Caller, step.SignalFrame
	return step, nil
}

// Resume makes the frame with registers regs the current one: a caller
// found without CFI.
func (w *CFIWalk) Resume(regs *DwarfRegs, exact bool) { w.regs, w.exact = regs, exact }

func establishFrame(fde *frame.FrameDescriptionEntry, pc uint64) (fc *frame.FrameContext, err error) {
	defer func() {
		if r := recover(); r != nil {
			fc, err = nil, fmt.Errorf("malformed CFI program: %v", r)
		}
	}()
	return fde.EstablishFrame(pc)
}

func (p *Process) applyRule(regs *DwarfRegs, cfa uint64, r frame.DWRule) (uint64, bool, error) {
	switch r.Rule {
	case frame.RuleUndefined:
		return 0, false, nil
	case frame.RuleSameVal:
		v, ok := regs.Get(int(r.Reg))
		return v, ok, nil
	case frame.RuleOffset:
		v, err := p.ReadUint64(uint64(int64(cfa) + r.Offset))
		return v, err == nil, err
	case frame.RuleValOffset:
		return uint64(int64(cfa) + r.Offset), true, nil
	case frame.RuleRegister:
		v, ok := regs.Get(int(r.Reg))
		return v, ok, nil
	case frame.RuleExpression:
		addr, err := p.evalCFIExpr(regs, cfa, r.Expression)
		if err != nil {
			return 0, false, err
		}
		v, err := p.ReadUint64(addr)
		return v, err == nil, err
	case frame.RuleValExpression:
		v, err := p.evalCFIExpr(regs, cfa, r.Expression)
		return v, err == nil, err
	case frame.RuleCFA:
		v, ok := regs.Get(int(r.Reg))
		return uint64(int64(v) + r.Offset), ok, nil
	case frame.RuleFramePointer:
		v, err := p.ReadUint64(uint64(int64(cfa) + r.Offset))
		return v, err == nil, err
	}
	return 0, false, fmt.Errorf("unsupported rule %d", r.Rule)
}

func (p *Process) evalCFIExpr(regs *DwarfRegs, cfa uint64, expr []byte) (v uint64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed DWARF expression: %v", r)
		}
	}()
	dr := make([]*op.DwarfRegister, 64)
	for i := range 64 {
		if x, ok := regs.Get(i); ok {
			dr[i] = op.DwarfRegisterFromUint64(x)
		}
	}
	a := regs.Arch
	d := op.NewDwarfRegisters(0, dr, le, uint64(a.dwarfPC()), uint64(a.dwarfSP()), uint64(a.dwarfFP()), 30)
	d.CFA = int64(cfa)
	res, _, err := op.ExecuteStackProgram(*d, expr, 8, p.ReadMemory)
	return uint64(res), err
}

// Registers converts back to a register file in the kernel's order, for
// code that names registers ("rax", "x0"): the known registers with a
// DWARF number, 0 elsewhere. tp is the thread pointer, which DWARF does
// not number.
func (d *DwarfRegs) Registers(tp uint64) *Registers {
	r := &Registers{Arch: d.Arch, TP: tp}
	r.Values = make([]uint64, len(r.Names()))
	for i := range r.Values {
		n := -1
		switch {
		case d.Arch == ArchAMD64 && i < len(amd64DwarfNum):
			n = amd64DwarfNum[i]
		case d.Arch == ArchARM64 && i <= arm64PC:
			n = i
		}
		if v, ok := d.Get(n); ok {
			r.Values[i] = v
		}
	}
	if d.Arch == ArchAMD64 {
		r.Values[amd64FSBase] = tp
	}
	return r
}
