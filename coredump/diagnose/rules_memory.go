package diagnose

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/insn"
	"github.com/coreexplain/coreexplain/coredump/memory"
)

// Memory rules: nil-deref (a fault in Go code at a small address, named
// down to the field), dangling-slice and c-retains-go-pointer.
func init() {
	Register(Rule{Name: "nil-deref", Run: nilDeref})
}

func nilDeref(f *Facts) []Finding {
	ft := f.Fault()
	if ft == nil || !ft.InGo || ft.Signo != coredump.SIGSEGV || ft.Addr >= goNilLimit {
		return nil
	}
	in := f.faultInsn(ft)
	fd := Finding{Class: NilDeref, Cause: true, Confidence: High, Location: f.faultLocation(ft)}
	fd.Evidence = append(fd.Evidence, Evidence{
		What:   fmt.Sprintf("%s (%s) at address %#x, pc %#x in Go code", ft.Signo, ft.CodeName(), ft.Addr, ft.PC),
		Addr:   AddrPtr(ft.Addr),
		Source: ft.Source,
	})
	access, size := "access", 0
	if in != nil {
		what := "faulting instruction: " + in.Text
		if in.Mem != nil {
			access, size = in.Access.String(), in.Mem.Size
			if in.Mem.Index == "" && in.Mem.Base != "" && in.Mem.Base != "rip" && uint64(in.Mem.Disp) == ft.Addr {
				what += fmt.Sprintf(": displacement %#x equals the fault address, so base register %s held nil", in.Mem.Disp, in.Mem.Base)
			} else {
				what += fmt.Sprintf(" (%s %s)", in.Access, in.Mem)
			}
		}
		fd.Evidence = append(fd.Evidence, Evidence{What: what, Addr: AddrPtr(ft.PC), Value: fmt.Sprintf("% x", in.Bytes), Source: "code bytes at the pc"})
	}
	fn := fd.Location.Function
	callPC, funcCall := insn.CallsLoadedValue(f.Proc, in)
	if funcCall {
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("the word it loads into %s is called at %#x: it is the code pointer of a func value", in.Dst, callPC),
			Addr: AddrPtr(callPC), Source: "code bytes after the pc"})
	}
	bases, frame, err := f.nilBases(ft, size, funcCall)
	if err != nil {
		f.Note("nil-deref: %v", err)
	}
	if frame != "" {
		fn = frame
	}
	verb := map[string]string{"read": "reading", "write": "writing"}[access]
	if verb == "" {
		verb = "accessing"
	}
	if funcCall && (len(bases) == 0 || !bases[0].FuncValue) {
		fd.Summary = fmt.Sprintf("Nil function call in %s: a nil func value was called", fn)
		fd.Confidence, fd.Why = Medium, "no func value of the faulting frame is known to be the one called"
		fd.Key = "nil func call"
		return []Finding{fd}
	}
	if len(bases) == 0 {
		fd.Summary = fmt.Sprintf("Nil pointer dereference in %s: %s offset %#x of a nil pointer", fn, verb, ft.Addr)
		fd.Confidence, fd.Why = Medium, "no variable of the faulting frame has a pointer type with a member at that offset"
		fd.Key = fmt.Sprintf("offset %#x", ft.Addr)
		return []Finding{fd}
	}
	b := bases[0]
	if b.FuncValue {
		fd.Summary = fmt.Sprintf("Nil function call in %s: %s is nil (%s) and was called", fn, b.Expr, b.Type)
		fd.Key = "nil func " + b.Type
		fd.Evidence = append(fd.Evidence,
			Evidence{What: fmt.Sprintf("%s in %s is a func value (%s): a pointer to a funcval whose word at offset 0 is the code", b.Expr, fn, b.Type) + nilState(b),
				Value: b.Type, Source: "DWARF variables of " + fn})
	} else {
		fd.Summary = fmt.Sprintf("Nil pointer dereference in %s: %s is nil (%s); %s its field %s at offset %#x",
			fn, b.Expr, b.Type, verb, b.Field, ft.Addr)
		fd.Key = b.Type + "." + b.Field
		elem := strings.TrimPrefix(b.Type, "*")
		fd.Evidence = append(fd.Evidence,
			Evidence{What: fmt.Sprintf("offset %#x of %s is field %s (%s, %d bytes)", ft.Addr, elem, b.Field, b.FieldType, b.FieldSize),
				Addr: AddrPtr(ft.Addr), Value: b.Field, Source: "DWARF type " + elem},
			Evidence{What: fmt.Sprintf("%s in %s has type %s", b.Expr, fn, b.Type) + nilState(b),
				Value: b.Type, Source: "DWARF variables of " + fn})
	}
	switch {
	case b.Nil != nil && *b.Nil:
	case len(bases) == 1:
		switch {
		case b.Nil != nil:
		case b.FuncValue:
			fd.Evidence[len(fd.Evidence)-1].What += "; it is the only func value in the frame's reach"
		default:
			fd.Evidence[len(fd.Evidence)-1].What += "; it is the only pointer in the frame's reach whose type has a member at that offset"
		}
	default:
		var alt []string
		for _, o := range bases[1:min(len(bases), 4)] {
			if o.FuncValue {
				alt = append(alt, fmt.Sprintf("%s (%s)", o.Expr, o.Type))
			} else {
				alt = append(alt, fmt.Sprintf("%s.%s (%s)", o.Expr, o.Field, o.Type))
			}
		}
		fd.Confidence = Medium
		fd.Why = "other expressions of the frame also fit: " + strings.Join(alt, ", ")
	}
	return []Finding{fd}
}

func nilState(b memory.NilBase) string {
	if b.Nil == nil {
		return "; its value is not recorded (held in a register)"
	}
	return "; it is nil in the core"
}

// nilBases finds the frame that faulted and the nil expressions in it.
func (f *Facts) nilBases(ft *memory.Fault, size int, funcCall bool) ([]memory.NilBase, string, error) {
	frames, err := memory.GoroutineFrames(f.Proc, ft.Goroutine)
	if err != nil {
		return nil, "", err
	}
	for _, fr := range frames {
		if fr.PC != ft.PC {
			continue
		}
		bases, err := memory.NilBases(fr.Scope, ft.Addr, size, funcCall)
		return bases, fr.Function, err
	}
	return nil, "", fmt.Errorf("no frame of goroutine %d at pc %#x", ft.Goroutine, ft.PC)
}

func init() {
	Register(Rule{Name: "dangling-slice", Run: danglingSlice})
	Register(Rule{Name: "c-retains-go-pointer", Run: cRetainsGoPointer})
}

// crashFrameDepth bounds the frames of the crash path searched for slices.
const crashFrameDepth = 32

// danglingSlice checks every slice (and pointer to array) among the
// arguments and locals of the frames on the crash path, and in the struct
// fields reachable from them: the faulting
// goroutine's frames from the fault outward, including the cgo call's Go
// side.
func danglingSlice(f *Facts) []Finding {
	ft := f.Fault()
	gid := int64(0)
	if ft != nil {
		gid = ft.Goroutine
	}
	if gid == 0 && (ft == nil || ft.TID != 0) && f.Memory().Go() == nil {
		return nil
	}
	frames, err := memory.GoroutineFrames(f.Proc, gid)
	if err != nil {
		if f.Memory().Go() != nil {
			f.Note("dangling-slice: %v", err)
		}
		return nil
	}
	type seenKey struct{ data, len, cap uint64 }
	byKey := map[seenKey]*Finding{}
	var order []seenKey
	sp := f.Memory()
	start := 0
	if ft != nil && ft.InGo {
		for i, fr := range frames {
			if fr.PC == ft.PC {
				start = i
				break
			}
		}
	}
	for _, fr := range frames[start:min(len(frames), start+crashFrameDepth)] {
		if strings.HasPrefix(fr.Function, "runtime.") && !strings.HasPrefix(fr.Function, "runtime.cgocall") {
			continue
		}
		exprs, _ := memory.SliceExprs(fr.Scope)
		for _, expr := range exprs {
			sl, err := sp.SliceExpr(fr.Scope, expr)
			if err != nil || sl == nil || sl.Data == 0 {
				continue
			}
			covers := ft != nil && ft.Signo.IsFault() && sl.Covers(ft.Addr)
			if ft != nil && !covers && sl.Cap == 0 && len(sl.Ranges) > 0 && sl.Ranges[0].Region.Dangling {
				// DWARF often leaves len and cap of a slice the compiler
				// knows to be constant undescribed (Delve reads 0): the
				// fault lies in the same dead region its data points to.
				r0 := sl.Ranges[0].Region
				if ft.Addr >= uint64(sl.Data) && ft.Addr < sp.RegionEnd(r0) {
					covers = true
				}
			}
			if !sl.Dangling && !covers && sl.Confusion == "" && len(sl.Problems) == 0 {
				continue
			}
			k := seenKey{uint64(sl.Data), sl.Len, sl.Cap}
			where := fmt.Sprintf("%s in %s", expr, fr.Function)
			if fd, ok := byKey[k]; ok {
				fd.Evidence = append(fd.Evidence, Evidence{What: "the same slice is " + where, Addr: headerAddr(sl), Source: "DWARF variables of " + fr.Function})
				continue
			}
			fd := sliceFinding(f, sl, where, fr, ft, covers)
			if fd == nil {
				continue
			}
			byKey[k] = fd
			order = append(order, k)
		}
	}
	if ft != nil && ft.Signo.IsFault() && !anyCause(byKey) {
		// The fault lies in no slice the frames hold (their registers are
		// lost once a fault in Go code becomes a panic): look for a
		// slice in the program's globals whose backing array covers it.
		if fd := globalSliceCover(f, frames[start:], ft); fd != nil {
			order = append(order, seenKey{})
			byKey[seenKey{}] = fd
		}
	}
	var out []Finding
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out
}

// packageOf is the package path of a package variable's expression
// ("example.com/x/store.cache[2].buf" → "example.com/x/store").
func packageOf(expr string) string {
	i := strings.LastIndexByte(expr, '/') + 1
	if j := strings.IndexByte(expr[i:], '.'); j >= 0 {
		return expr[:i+j]
	}
	return expr
}

func anyCause[K comparable](m map[K]*Finding) bool {
	for _, fd := range m {
		if fd.Cause {
			return true
		}
	}
	return false
}

// globalSliceCover finds a slice reachable from the program's package
// variables whose backing array holds the fault address.
func globalSliceCover(f *Facts, frames []memory.Frame, ft *memory.Fault) *Finding {
	rt := f.Memory().Runtime()
	if rt == nil || len(frames) == 0 {
		return nil
	}
	fr := frames[0]
	if fr.Scope == nil {
		return nil
	}
	exprs, err := memory.GlobalSliceExprs(fr.Scope, rt.IsStdlib)
	if err != nil {
		f.Note("dangling-slice: package variables: %v", err)
	}
	for _, expr := range exprs {
		sl, err := f.Memory().SliceExpr(fr.Scope, expr)
		if err != nil || sl == nil || sl.Data == 0 || !sl.Covers(ft.Addr) {
			continue
		}
		return sliceFinding(f, sl, fmt.Sprintf("%s in package %s", expr, packageOf(expr)), fr, ft, true)
	}
	return nil
}

func headerAddr(sl *memory.Slice) *coredump.Addr {
	if sl.Header == 0 {
		return nil
	}
	return AddrPtr(uint64(sl.Header))
}

func sliceFinding(f *Facts, sl *memory.Slice, where string, fr memory.Frame, ft *memory.Fault, covers bool) *Finding {
	fd := &Finding{Class: DanglingSlice, Confidence: High, Rank: -10,
		Location: &Location{Function: fr.Function, File: fr.File, Line: fr.Line, PC: AddrPtr(fr.PC)}}
	if ft != nil {
		fd.Location.Goroutine, fd.Location.TID = ft.Goroutine, ft.TID
	}
	hdr := fmt.Sprintf("%s %s = {data %s, len %d, cap %d}", where, sl.Type, sl.Data, sl.Len, sl.Cap)
	fd.Evidence = append(fd.Evidence, Evidence{What: "slice " + hdr, Addr: headerAddr(sl),
		Value: fmt.Sprintf("%s/%d/%d", sl.Data, sl.Len, sl.Cap), Source: "DWARF variables of " + fr.Function})
	for _, r := range sl.Ranges {
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("backing array %s-%s: %s", r.Start, r.End, r.Region.Summary),
			Addr: AddrPtr(uint64(r.Start)), Value: r.Region.Kind.String(), Source: "address classification"})
	}
	for _, p := range sl.Problems {
		fd.Evidence = append(fd.Evidence, Evidence{What: p, Source: "slice header"})
	}
	name := strings.SplitN(where, " ", 2)[0]
	switch {
	case covers && sl.Dangling:
		fd.Cause = true
		fd.Location = f.faultLocation(ft)
		fd.Summary = fmt.Sprintf("Dangling slice %s: the fault address %#x lies in its backing array, which is no longer valid memory (%s)",
			where, ft.Addr, sl.Why)
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("the fault address %#x is %d bytes past the slice's data pointer", ft.Addr, ft.Addr-uint64(sl.Data)),
			Addr: AddrPtr(ft.Addr), Source: ft.Source})
	case covers:
		fd.Cause = true
		fd.Location = f.faultLocation(ft)
		fd.Confidence = Medium
		fd.Why = "the backing array covers the fault address but classifies as valid memory"
		fd.Summary = fmt.Sprintf("Fault inside the backing array of slice %s at %#x", where, ft.Addr)
	case sl.Dangling:
		fd.Rank = 0
		fd.Summary = fmt.Sprintf("Dangling slice %s: its backing array is no longer valid memory (%s)", where, sl.Why)
	case sl.Confusion != "":
		fd.Rank, fd.Confidence = 0, Medium
		fd.Why = "a heuristic on the words at the data pointer"
		fd.Summary = fmt.Sprintf("Slice %s looks like it was built from the wrong pointer: %s", where, sl.Confusion)
	default:
		fd.Rank, fd.Confidence = 0, Medium
		fd.Summary = fmt.Sprintf("Corrupt slice header %s: %s", where, strings.Join(sl.Problems, "; "))
	}
	fd.Key = fmt.Sprintf("%s %s %s", name, sl.Type, kindOfRanges(sl))
	return fd
}

func kindOfRanges(sl *memory.Slice) string {
	for _, r := range sl.Ranges {
		if r.Region.Dangling {
			return r.Region.Kind.String()
		}
	}
	if len(sl.Ranges) > 0 {
		return sl.Ranges[0].Region.Kind.String()
	}
	return ""
}

// cRetainsGoPointer reports C memory (globals, heap) that still points
// into Go memory: a cgo pointer-passing rule violation, and the cause of
// the crash when the fault involves that Go memory.
func cRetainsGoPointer(f *Facts) []Finding {
	sp := f.Memory()
	if sp.Heap() == nil {
		return nil
	}
	ptrs, notes := sp.CHeldGoPointers()
	for _, n := range notes {
		f.Note("c-retains-go-pointer: %s", n)
	}
	ft := f.Fault()
	var out []Finding
	for _, gp := range ptrs {
		fd := Finding{Class: CRetainsGoPointer, Confidence: High, Rank: 5}
		t := gp.Target
		fd.Evidence = append(fd.Evidence,
			Evidence{What: fmt.Sprintf("%s %s at %s holds %s", gp.HolderKind, gp.HolderName, gp.Holder, gp.Value),
				Addr: AddrPtr(uint64(gp.Holder)), Value: gp.Value.String(), Source: "scan of C memory"},
			regionEvidence("the Go memory it points to", t))
		state := "live Go memory"
		if t.Dangling {
			state = "Go memory that is no longer valid (" + t.Why + ")"
		} else if t.Heap != nil && t.Heap.State.String() == "allocated" {
			state = "an allocated Go object — the C pointer does not keep it alive, so it may be a different object reusing the slot"
		}
		if gp.HolderKind == "C heap" && gp.Chunk == 0 {
			fd.Confidence, fd.Why = Medium, "the C allocator's chunks are not walked: the word may be stale data in a freed chunk"
		}
		if whys := implicated(f, ft, gp); len(whys) > 0 {
			fd.Cause, fd.Rank = true, -5
			fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("the crash: %s (%s) at fault address %#x in %s",
				ft.Signo, ft.CodeName(), ft.Addr, f.faultLocation(ft).Function), Addr: AddrPtr(ft.Addr), Source: ft.Source})
			for _, why := range whys {
				fd.Evidence = append(fd.Evidence, Evidence{What: why, Source: ft.Source})
			}
			fd.Location = f.faultLocation(ft)
			fd.Summary = fmt.Sprintf("C keeps a pointer to Go memory in %s (%s) after the cgo call returned; it now points to %s, and the crash came from it",
				gp.HolderName, gp.Value, state)
		} else {
			fd.Summary = fmt.Sprintf("C keeps a pointer to Go memory in %s (%s), which cgo forbids; it now points to %s",
				gp.HolderName, gp.Value, state)
		}
		fd.Key = "holder " + strings.SplitN(gp.HolderName, "+", 2)[0]
		out = append(out, fd)
	}
	return out
}

// implicated says how a C-held Go pointer is tied to the fault: the fault
// address lies in the Go object, is a word read from it, or a register at
// the fault holds the pointer.
func implicated(f *Facts, ft *memory.Fault, gp memory.GoPointer) []string {
	if ft == nil {
		return nil
	}
	var whys []string
	t := gp.Target
	lo, hi := uint64(gp.Value), uint64(gp.Value)+8
	if t.Heap != nil && t.Heap.Object != 0 && t.Heap.Span != nil {
		lo, hi = uint64(t.Heap.Object), uint64(t.Heap.Object)+t.Heap.Span.ElemSize
	}
	if ft.Addr >= lo && ft.Addr < hi {
		whys = append(whys, fmt.Sprintf("the fault address %#x lies in that Go object (%#x-%#x)", ft.Addr, lo, hi))
	}
	if ft.Regs != nil {
		for i, n := range ft.Regs.Names() {
			if i < len(ft.Regs.Values) && ft.Regs.Values[i] >= lo && ft.Regs.Values[i] < hi && n != "rip" {
				whys = append(whys, fmt.Sprintf("register %s = %#x points into that Go object at the fault", n, ft.Regs.Values[i]))
				break
			}
		}
	}
	n := min(hi-lo, 512)
	buf := make([]byte, n)
	// Only the readable bytes are searched.
	if got, _ := f.Proc.ReadMemory(buf, lo); got > 0 && ft.Addr >= nullPageLimitDiag {
		for off := 0; off+8 <= got; off += 8 {
			w := binary.LittleEndian.Uint64(buf[off:])
			if w == ft.Addr || (w <= ft.Addr && ft.Addr-w < 64) {
				whys = append(whys, fmt.Sprintf("the fault address %#x comes from the word %#x at offset %d of that Go object, which C read through its stale pointer",
					ft.Addr, w, off))
				break
			}
		}
	}
	return whys
}

const nullPageLimitDiag = 0x10000
