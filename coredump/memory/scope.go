package memory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/go-delve/delve/pkg/dwarf/godwarf"
	"github.com/go-delve/delve/pkg/dwarf/op"
	"github.com/go-delve/delve/pkg/proc"
)

// Frame is a Go frame of a goroutine, as Delve sees it, with an
// evaluation scope for its variables.
type Frame struct {
	Index    int
	Function string
	File     string
	Line     int
	PC       uint64
	Inlined  bool
	Scope    *proc.EvalScope
}

// loadCfg loads values shallowly: the rules need pointer values and
// slice headers, not whole object graphs.
var loadCfg = proc.LoadConfig{FollowPointers: false, MaxVariableRecurse: 1, MaxStringLen: 64, MaxArrayValues: 0, MaxStructFields: -1}

// maxFrames bounds the frames walked per goroutine.
const maxFrames = 128

// GoroutineFrames returns the Go frames of goroutine gid (the crashing
// goroutine when gid is 0 and a fault names one; else the goroutine the
// first thread runs).
func GoroutineFrames(p *coredump.Process, gid int64) ([]Frame, error) {
	t, err := p.Delve()
	if err != nil {
		return nil, err
	}
	var g *proc.G
	if gid == 0 {
		if ft := For(p).CrashFault(); ft != nil && ft.Goroutine != 0 {
			gid = ft.Goroutine
		}
	}
	if gid != 0 {
		g, err = proc.FindGoroutine(t, gid)
	} else {
		g, err = proc.GetG(t.CurrentThread())
	}
	if err != nil {
		return nil, fmt.Errorf("goroutine %d: %w", gid, err)
	}
	if g == nil {
		return nil, fmt.Errorf("goroutine %d not found", gid)
	}
	frames, err := safeStack(t, g)
	if err != nil {
		return nil, fmt.Errorf("stack of goroutine %d: %w", g.ID, err)
	}
	tid := -1
	if g.Thread != nil {
		tid = g.Thread.ThreadID()
	}
	frames = reunwindAfterSigpanic(p, t, frames)
	out := make([]Frame, 0, len(frames))
	for i, fr := range frames {
		f := Frame{Index: i, PC: fr.Call.PC, File: fr.Call.File, Line: fr.Call.Line, Inlined: fr.Inlined}
		if fr.Call.Fn != nil {
			f.Function = fr.Call.Fn.Name
		}
		f.Scope = proc.FrameToScope(t, t.Memory(), g, tid, frames[i:]...)
		if f.Scope.PC == 0 {
			f.Scope.PC = fr.Current.PC // a frame this package unwound
		}
		out = append(out, f)
	}
	return out, nil
}

// reunwindAfterSigpanic replaces Delve's frames above the frame that
// faulted in Go code with frames unwound from the executable's call frame
// information: Delve loses the caller of a frameless function that
// faulted (it skips straight to runtime.main), while the runtime's own
// traceback shows it. Frames up to the faulting one are Delve's, with
// their inlined calls.
func reunwindAfterSigpanic(p *coredump.Process, t *proc.Target, frames []proc.Stackframe) []proc.Stackframe {
	sp := -1
	for i, fr := range frames {
		if fr.Call.Fn != nil && fr.Call.Fn.Name == "runtime.sigpanic" {
			sp = i
			break
		}
	}
	if sp < 0 || sp+1 >= len(frames) {
		return frames
	}
	j := sp + 1
	for j+1 < len(frames) && frames[j].Inlined {
		j++
	}
	fault := frames[j]
	regs := &coredump.DwarfRegs{Arch: p.Arch}
	regs.SetPC(fault.Current.PC)
	regs.SetSP(uint64(frames[sp].Regs.CFA))
	if bp := fault.Regs.BP(); bp != 0 {
		regs.SetFP(bp)
	}
	bi := t.BinInfo()
	out := append([]proc.Stackframe(nil), frames[:j+1]...)
	exact := true
	for len(out) < maxFrames {
		step, err := p.UnwindCFI(regs, exact)
		if err != nil {
			break
		}
		caller := step.Caller
		pc := caller.PC()
		fn := bi.PCToFunc(pc)
		if fn == nil || caller.SP() <= regs.SP() {
			break
		}
		file, line, _ := bi.PCToLine(pc - 1)
		pcN, spN, fpN := dwarfRoles(p.Arch)
		dr := op.NewDwarfRegisters(0, nil, binary.LittleEndian, pcN, spN, fpN, 0)
		dr.AddReg(dr.SPRegNum, op.DwarfRegisterFromUint64(caller.SP()))
		dr.AddReg(dr.PCRegNum, op.DwarfRegisterFromUint64(pc))
		if bp, ok := caller.Get(int(fpN)); ok {
			dr.AddReg(dr.BPRegNum, op.DwarfRegisterFromUint64(bp))
		}
		// Go functions' frame base is the CFA; find it by unwinding once
		// more (the caller's own CFA).
		if next, err := p.UnwindCFI(caller, false); err == nil {
			dr.CFA, dr.FrameBase = int64(next.CFA), int64(next.CFA)
		}
		loc := proc.Location{PC: pc - 1, File: file, Line: line, Fn: fn}
		out = append(out, proc.Stackframe{Current: proc.Location{PC: pc, File: file, Line: line, Fn: fn}, Call: loc, Regs: *dr})
		if fn.Name == "runtime.goexit" || fn.Name == "runtime.main" || fn.Name == "runtime.mstart" {
			break
		}
		regs, exact = caller, false
	}
	if len(out) <= j+1 {
		return frames
	}
	return out
}

// dwarfRoles are the DWARF numbers of the pc, sp and frame pointer.
func dwarfRoles(a coredump.Arch) (pc, sp, fp uint64) {
	if a == coredump.ArchARM64 {
		return 32, 31, 29
	}
	return 16, 7, 6
}

func safeStack(t *proc.Target, g *proc.G) (frames []proc.Stackframe, err error) {
	defer func() {
		if r := recover(); r != nil {
			frames, err = nil, fmt.Errorf("delve: internal error unwinding: %v", r)
		}
	}()
	return proc.GoroutineStacktrace(t, g, maxFrames, 0)
}

// FrameVars returns the arguments and locals of a frame.
func FrameVars(sc *proc.EvalScope) (vars []*proc.Variable, err error) {
	defer func() {
		if r := recover(); r != nil {
			vars, err = nil, fmt.Errorf("delve: internal error reading variables: %v", r)
		}
	}()
	args, err1 := sc.FunctionArguments(loadCfg)
	locals, err2 := sc.LocalVariables(loadCfg)
	return append(args, locals...), errors.Join(err1, err2)
}

// Eval evaluates a Go expression in a frame's scope.
func Eval(sc *proc.EvalScope, expr string) (v *proc.Variable, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("delve: internal error evaluating %q: %v", expr, r)
		}
	}()
	v, err = sc.EvalExpression(expr, loadCfg)
	if err == nil && v.Unreadable != nil {
		err = v.Unreadable
	}
	return v, err
}

// FieldPath names the member of type t at byte offset off: "Limits.MaxIdle",
// "Tags[3]". size is the member's size; exact reports that off is the
// member's first byte. ok is false for padding or an offset past the type.
func FieldPath(t godwarf.Type, off int64) (path string, size int64, exact, ok bool) {
	for depth := 0; depth < 32; depth++ {
		t = godwarf.ResolveTypedef(t)
		if off < 0 || off >= t.Size() {
			return path, 0, false, false
		}
		switch x := t.(type) {
		case *godwarf.StructType:
			var hit *godwarf.StructField
			for _, f := range x.Field {
				if off >= f.ByteOffset && off < f.ByteOffset+f.Type.Size() {
					hit = f
					break
				}
			}
			if hit == nil {
				return path, 0, false, false // padding
			}
			if path != "" {
				path += "."
			}
			path += hit.Name
			off -= hit.ByteOffset
			t = hit.Type
		case *godwarf.ArrayType:
			es := x.Type.Size()
			if es <= 0 {
				return path, t.Size(), off == 0, path != ""
			}
			path += fmt.Sprintf("[%d]", off/es)
			off %= es
			t = x.Type
		default:
			return path, t.Size(), off == 0, path != ""
		}
	}
	return path, 0, false, false
}

// NilBase is an expression of a frame whose pointer type explains a fault
// at a small address: the expression is nil and the fault address is the
// offset of Field in the pointed-to type.
type NilBase struct {
	Expr      string // e.g. "s.cfg"
	Type      string // the pointer type, e.g. "*main.Config"
	Field     string // e.g. "Limits.MaxIdle"
	FieldType string
	FieldSize int64
	Exact     bool // the offset is the field's first byte
	// Nil is true when the expression evaluates to nil in the core,
	// false when it does not, and nil when its value is unknown
	// (optimised away, in a register).
	Nil   *bool
	Depth int // pointer dereferences needed to reach it
}

// Bounds of the search for a nil base: pointer hops from a variable, and
// candidates examined.
const (
	maxNilDepth      = 3
	maxNilCandidates = 256
)

// NilBases searches the frame's variables, and the pointer fields
// reachable from them, for pointer-typed expressions whose pointee has a
// member at offset off. Those whose value is known not to be nil are
// dropped. The best explanation comes first: known nil, a member of the
// access's size, a member's first byte, fewest dereferences.
func NilBases(sc *proc.EvalScope, off uint64, accessSize int) ([]NilBase, error) {
	vars, err := FrameVars(sc)
	if len(vars) == 0 && err != nil {
		return nil, err
	}
	var out []NilBase
	seen := map[string]bool{}
	var walk func(expr string, t godwarf.Type, depth int)
	walk = func(expr string, t godwarf.Type, depth int) {
		if len(out) >= maxNilCandidates || seen[expr] {
			return
		}
		seen[expr] = true
		switch x := godwarf.ResolveTypedef(t).(type) {
		case *godwarf.PtrType:
			elem := godwarf.ResolveTypedef(x.Type)
			if elem == nil {
				return
			}
			if path, size, exact, ok := FieldPath(elem, int64(off)); ok && elem.Size() > int64(off) {
				nb := NilBase{Expr: expr, Type: t.String(), Field: path, FieldSize: size, Exact: exact, Depth: depth}
				if ft := fieldType(elem, path); ft != "" {
					nb.FieldType = ft
				}
				out = append(out, nb)
			}
			if depth < maxNilDepth {
				if st, ok := elem.(*godwarf.StructType); ok {
					for _, f := range st.Field {
						walk(expr+"."+f.Name, f.Type, depth+1)
					}
				}
			}
		case *godwarf.StructType:
			for _, f := range x.Field {
				walk(expr+"."+f.Name, f.Type, depth)
			}
		}
	}
	for _, v := range vars {
		if v.Name == "" || strings.HasPrefix(v.Name, "~") || v.DwarfType == nil {
			continue
		}
		walk(v.Name, v.DwarfType, 0)
	}
	// Keep those that can be nil; learn which are.
	kept := out[:0]
	for _, nb := range out {
		v, err := Eval(sc, nb.Expr)
		if err == nil && v.Kind == reflect.Ptr && len(v.Children) == 1 {
			isNil := v.Children[0].Addr == 0
			if !isNil {
				continue
			}
			nb.Nil = &isNil
		}
		kept = append(kept, nb)
	}
	out = kept
	score := func(nb NilBase) int {
		s := 0
		if nb.Nil != nil && *nb.Nil {
			s += 100
		}
		if accessSize > 0 && nb.FieldSize == int64(accessSize) {
			s += 20
		}
		if nb.Exact {
			s += 10
		}
		return s - nb.Depth
	}
	sort.SliceStable(out, func(i, j int) bool { return score(out[i]) > score(out[j]) })
	return out, nil
}

// fieldType names the type of the member at path of t.
func fieldType(t godwarf.Type, path string) string {
	cur := t
	for _, part := range strings.Split(strings.ReplaceAll(path, "[", ".["), ".") {
		if part == "" {
			continue
		}
		cur = godwarf.ResolveTypedef(cur)
		if strings.HasPrefix(part, "[") {
			a, ok := cur.(*godwarf.ArrayType)
			if !ok {
				return ""
			}
			cur = a.Type
			continue
		}
		st, ok := cur.(*godwarf.StructType)
		if !ok {
			return ""
		}
		var next godwarf.Type
		for _, f := range st.Field {
			if f.Name == part {
				next = f.Type
			}
		}
		if next == nil {
			return ""
		}
		cur = next
	}
	return cur.String()
}
