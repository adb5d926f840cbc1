package memory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
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
// goroutine when gid is 0; else the goroutine the crashing thread runs).
//
// The frames are package goruntime's (the binary's own pclntab unwinder,
// the reference for what the stack is); Delve supplies each frame's
// evaluation scope. A frame Delve's unwinder did not reach (it loses the
// caller of a frameless function that faulted) gets a scope built from
// goruntime's pc, stack pointer and CFA; an inlined call Delve did not
// report has no scope (Scope nil), since only Delve's unwinder knows the
// DWARF of an inlined instance.
func GoroutineFrames(p *coredump.Process, gid int64) ([]Frame, error) {
	sp := For(p)
	rt := sp.Runtime()
	if rt == nil {
		return nil, fmt.Errorf("no Go runtime view: %s", strings.Join(sp.Problems(), "; "))
	}
	g, err := frameGoroutine(rt, gid)
	if err != nil {
		return nil, err
	}
	stack := rt.Stack(g, maxFrames)
	if len(stack.Frames) == 0 {
		if stack.Err != nil {
			return nil, fmt.Errorf("stack of goroutine %d: %w", g.ID, stack.Err)
		}
		return nil, fmt.Errorf("goroutine %d has no frames", g.ID)
	}
	t, err := p.Delve()
	if err != nil {
		return nil, err
	}
	dg, _ := proc.FindGoroutine(t, g.ID)
	var dframes []proc.Stackframe
	if dg != nil {
		dframes, _ = safeStack(t, dg)
	}
	tid := -1
	if m := g.M(); m != nil && p.Thread(int(m.ProcID)) != nil {
		tid = int(m.ProcID)
	}
	out := make([]Frame, 0, len(stack.Frames))
	next := 0 // Delve frames before it are matched or skipped
	for _, fr := range stack.Frames {
		if fr.Kind != goruntime.FrameGo {
			continue
		}
		f := Frame{Index: len(out), Function: fr.Func, File: fr.File, Line: fr.Line, PC: fr.PC, Inlined: fr.Inlined}
		if k := matchDelveFrame(dframes[next:], fr); k >= 0 {
			k += next
			f.Scope = proc.FrameToScope(t, t.Memory(), dg, tid, dframes[k:]...)
			if f.Scope.PC == 0 {
				f.Scope.PC = dframes[k].Current.PC
			}
			next = k + 1
		} else if !fr.Inlined {
			f.Scope = synthScope(p, t, dg, tid, fr)
		} else if fr.Trap {
			f.Scope = trapInlinedScope(t, dg, tid, dframes[next:], fr)
		}
		out = append(out, f)
	}
	return out, nil
}

// frameGoroutine picks goroutine gid, or for 0 the crash's goroutine.
func frameGoroutine(rt *goruntime.Runtime, gid int64) (*goruntime.G, error) {
	if gid != 0 {
		if g := rt.Goroutine(gid); g != nil {
			return g, nil
		}
		return nil, fmt.Errorf("goroutine %d not found", gid)
	}
	if c, err := rt.Crash(); err == nil {
		if c.G != nil && c.G.Role == goruntime.RoleGoroutine {
			return c.G, nil
		}
		if c.Thread != nil && c.Thread.Goroutine != nil {
			return c.Thread.Goroutine, nil
		}
	}
	for _, th := range rt.Threads() {
		if th.Goroutine != nil {
			return th.Goroutine, nil
		}
	}
	return nil, errors.New("no goroutine runs on any thread")
}

// maxMatchSkip bounds how many Delve frames may lie between two frames
// both unwinders agree on.
const maxMatchSkip = 16

// matchDelveFrame finds the Delve frame of the same call as fr: same
// canonical frame address and function.
func matchDelveFrame(frames []proc.Stackframe, fr goruntime.Frame) int {
	for k := range min(len(frames), maxMatchSkip) {
		d := frames[k]
		if d.Call.Fn != nil && uint64(d.Regs.CFA) == fr.CFA && d.Call.Fn.Name == fr.Func {
			return k
		}
	}
	return -1
}

// synthScope builds an evaluation scope for a physical Go frame from the
// pc, stack pointer and CFA goruntime unwound: a Go function's frame base
// is its CFA, so its arguments and locals on the stack are found.
func synthScope(p *coredump.Process, t *proc.Target, g *proc.G, tid int, fr goruntime.Frame) *proc.EvalScope {
	bi := t.BinInfo()
	fn := bi.PCToFunc(fr.PC)
	if fn == nil {
		return nil
	}
	lookup := fr.PC
	if !fr.Trap && lookup > fn.Entry {
		lookup-- // a return address: the call is the instruction before it
	}
	pcN, spN, fpN := dwarfRoles(p.Arch)
	dr := op.NewDwarfRegisters(0, nil, binary.LittleEndian, pcN, spN, fpN, 0)
	dr.AddReg(dr.SPRegNum, op.DwarfRegisterFromUint64(fr.SP))
	dr.AddReg(dr.PCRegNum, op.DwarfRegisterFromUint64(fr.PC))
	dr.CFA, dr.FrameBase = int64(fr.CFA), int64(fr.CFA)
	loc := proc.Location{PC: lookup, File: fr.File, Line: fr.Line, Fn: fn}
	sc := proc.FrameToScope(t, t.Memory(), g, tid, proc.Stackframe{Current: loc, Call: loc, Regs: *dr})
	sc.PC = lookup
	return sc
}

// trapInlinedScope builds the scope of an inlined call at the exact pc a
// signal interrupted, which Delve's goroutine unwinder misses: it looks up
// the inline stack of every frame but the first at pc-1 (a return
// address), also in the frame above runtime.sigpanic, so when the inlined
// body starts at the faulting instruction (Go 1.22 places
// (*Account).balance's range exactly there) the lookup lands in the
// caller's own code. Unwinding again from the physical frame Delve did
// report, as the first frame of a copy of the goroutine with no thread,
// makes the fault pc the lookup pc; the copy's registers are those Delve
// recovered for that frame (pc, sp, frame pointer), so only variables in
// other registers become unreadable, as they are in Delve's own frame.
func trapInlinedScope(t *proc.Target, g *proc.G, tid int, dframes []proc.Stackframe, fr goruntime.Frame) (sc *proc.EvalScope) {
	if g == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			sc = nil
		}
	}()
	for k := range min(len(dframes), maxMatchSkip) {
		d := dframes[k]
		if d.Inlined || d.Call.Fn == nil || uint64(d.Regs.CFA) != fr.CFA || d.Current.PC != fr.PC {
			continue
		}
		g2 := *g
		g2.Thread = nil
		g2.PC, g2.SP, g2.BP = d.Current.PC, d.Regs.SP(), d.Regs.BP()
		if lr := d.Regs.Reg(d.Regs.LRRegNum); lr != nil {
			g2.LR = lr.Uint64Val
		}
		frames, err := proc.GoroutineStacktrace(t, &g2, 4, proc.StacktraceSimple)
		if err != nil {
			return nil
		}
		for i, f := range frames {
			if f.Current.PC != fr.PC || uint64(f.Regs.CFA) != fr.CFA {
				break
			}
			if f.Inlined && f.Call.Fn != nil && f.Call.Fn.Name == fr.Func {
				sc = proc.FrameToScope(t, t.Memory(), g, tid, frames[i:]...)
				if sc.PC == 0 {
					sc.PC = fr.PC
				}
				return sc
			}
		}
		return nil
	}
	return nil
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

// errNoScope: a frame without an evaluation scope (an inlined call only
// goruntime's unwinder reported).
var errNoScope = errors.New("the frame has no variable scope (an inlined call Delve did not unwind)")

// FrameVars returns the arguments and locals of a frame.
func FrameVars(sc *proc.EvalScope) (vars []*proc.Variable, err error) {
	if sc == nil {
		return nil, errNoScope
	}
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
	if sc == nil {
		return nil, errNoScope
	}
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
	// FuncValue: Expr is a func value that was called, and the fault
	// read its code pointer; Field is empty.
	FuncValue bool
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
//
// funcCall says the faulting load fetched a code pointer that is then
// called (insn.CallsLoadedValue): the candidates are then the func values of
// the frame, which are pointers to a funcval whose first word is the code.
func NilBases(sc *proc.EvalScope, off uint64, accessSize int, funcCall bool) ([]NilBase, error) {
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
		case *godwarf.FuncType:
			if funcCall && off == 0 {
				out = append(out, NilBase{Expr: expr, Type: t.String(), FieldSize: int64(accessSize), Exact: true, Depth: depth, FuncValue: true})
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
	funcs := false
	for _, nb := range out {
		funcs = funcs || nb.FuncValue
	}
	for _, nb := range out {
		if funcs && !nb.FuncValue {
			continue // the load fetched code to call: not a field of a struct
		}
		v, err := Eval(sc, nb.Expr)
		if err == nil && nb.FuncValue && v.Kind == reflect.Func && v.Unreadable == nil {
			// Delve reads through the funcval: Base is the code address,
			// 0 for a nil func value.
			isNil := v.Base == 0
			if !isNil {
				continue
			}
			nb.Nil = &isNil
		}
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

// Bounds of the search for slices reachable from a frame.
const (
	maxSliceDepth = 2
	maxSliceExprs = 256
)

// SliceExprs lists the expressions of a frame whose value is a slice or a
// pointer to an array: its arguments and locals, and the fields of the
// structs reachable from them through at most maxSliceDepth pointer
// dereferences ("u.body", "req.hdr.items"). A slice kept in a struct
// field is as dangerous as one in a variable.
func SliceExprs(sc *proc.EvalScope) ([]string, error) {
	vars, err := FrameVars(sc)
	if len(vars) == 0 && err != nil {
		return nil, err
	}
	return sliceExprs(sc, vars), nil
}

// GlobalSliceExprs is SliceExprs for the package variables of the
// program's own packages (not the standard library's), with the elements
// of slices of structs or of pointers to them ("main.pending[0].body"):
// a slice header that lives in the heap keeps its length in the core when
// the frames' registers do not.
func GlobalSliceExprs(sc *proc.EvalScope, stdlib func(name string) bool) (exprs []string, err error) {
	if sc == nil {
		return nil, errNoScope
	}
	defer func() {
		if r := recover(); r != nil {
			exprs, err = nil, fmt.Errorf("delve: internal error listing package variables: %v", r)
		}
	}()
	all, err := sc.PackageVariables(proc.LoadConfig{})
	var mine []*proc.Variable
	for _, v := range all {
		if v.Name != "" && !stdlib(v.Name) && !strings.Contains(v.Name, "..") {
			mine = append(mine, v)
		}
	}
	return sliceExprs(sc, mine), err
}

// maxSliceElems bounds the elements of a slice searched for slices.
const maxSliceElems = 16

func sliceExprs(sc *proc.EvalScope, vars []*proc.Variable) []string {
	var out []string
	var walk func(expr string, t godwarf.Type, depth int)
	walk = func(expr string, t godwarf.Type, depth int) {
		if len(out) >= maxSliceExprs || t == nil || depth > maxSliceDepth {
			return
		}
		switch x := godwarf.ResolveTypedef(t).(type) {
		case *godwarf.SliceType:
			out = append(out, expr)
			if !holdsStruct(x.ElemType) || depth == maxSliceDepth {
				return
			}
			v, err := Eval(sc, expr)
			if err != nil {
				return
			}
			for i := range min(v.Len, maxSliceElems) {
				walk(fmt.Sprintf("%s[%d]", expr, i), x.ElemType, depth+1)
			}
		case *godwarf.PtrType:
			switch elem := godwarf.ResolveTypedef(x.Type).(type) {
			case *godwarf.ArrayType:
				out = append(out, expr)
			case *godwarf.StructType:
				walk(expr, elem, depth+1)
			}
		case *godwarf.StructType:
			for _, f := range x.Field {
				if f.Name != "" && f.Name != "_" {
					walk(expr+"."+f.Name, f.Type, depth)
				}
			}
		}
	}
	for _, v := range vars {
		if v.Name == "" || strings.HasPrefix(v.Name, "~") || v.DwarfType == nil {
			continue
		}
		walk(v.Name, v.DwarfType, 0)
	}
	return out
}

// holdsStruct reports a struct type or a pointer to one.
func holdsStruct(t godwarf.Type) bool {
	t = godwarf.ResolveTypedef(t)
	if p, ok := t.(*godwarf.PtrType); ok {
		t = godwarf.ResolveTypedef(p.Type)
	}
	_, ok := t.(*godwarf.StructType)
	return ok
}
