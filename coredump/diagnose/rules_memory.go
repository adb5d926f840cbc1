package diagnose

import (
	"fmt"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/memory"
)

// Memory rules: nil-deref (a fault in Go code at a small address, named
// down to the field), dangling-slice and c-retains-go-pointer.
func init() {
	Register(Rule{Name: "nil-deref", Run: nilDeref})
}

func nilDeref(f *Facts) []Finding {
	ft := f.Fault()
	if ft == nil || !ft.InGo || ft.Signal != coredump.SIGSEGV || ft.Addr >= goNilLimit {
		return nil
	}
	in := f.faultInsn(ft)
	fd := Finding{Class: "nil-deref", Cause: true, Confidence: High, Location: f.faultLocation(ft)}
	fd.Evidence = append(fd.Evidence, Evidence{
		What:   fmt.Sprintf("%s (%s) at address %#x, pc %#x in Go code", ft.Signal, ft.CodeName(), ft.Addr, ft.PC),
		Addr:   AddrPtr(ft.Addr),
		Value:  ft.CodeName(),
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
	bases, frame, err := f.nilBases(ft, size)
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
	if len(bases) == 0 {
		fd.Summary = fmt.Sprintf("Nil pointer dereference in %s: %s offset %#x of a nil pointer", fn, verb, ft.Addr)
		fd.Confidence, fd.Why = Medium, "no variable of the faulting frame has a pointer type with a member at that offset"
		fd.Key = fmt.Sprintf("offset %#x", ft.Addr)
		return []Finding{fd}
	}
	b := bases[0]
	fd.Summary = fmt.Sprintf("Nil pointer dereference in %s: %s is nil (%s); %s its field %s at offset %#x",
		fn, b.Expr, b.Type, verb, b.Field, ft.Addr)
	fd.Key = b.Type + "." + b.Field
	elem := strings.TrimPrefix(b.Type, "*")
	fd.Evidence = append(fd.Evidence,
		Evidence{What: fmt.Sprintf("offset %#x of %s is field %s (%s, %d bytes)", ft.Addr, elem, b.Field, b.FieldType, b.FieldSize),
			Addr: AddrPtr(ft.Addr), Value: b.Field, Source: "DWARF type " + elem},
		Evidence{What: fmt.Sprintf("%s in %s has type %s", b.Expr, fn, b.Type) + nilState(b),
			Value: b.Type, Source: "DWARF variables of " + fn})
	switch {
	case b.Nil != nil && *b.Nil:
	case len(bases) == 1:
		if b.Nil == nil {
			fd.Evidence[len(fd.Evidence)-1].What += "; it is the only pointer in the frame's reach whose type has a member at that offset"
		}
	default:
		var alt []string
		for _, o := range bases[1:min(len(bases), 4)] {
			alt = append(alt, fmt.Sprintf("%s.%s (%s)", o.Expr, o.Field, o.Type))
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
func (f *Facts) nilBases(ft *memory.Fault, size int) ([]memory.NilBase, string, error) {
	frames, err := memory.GoroutineFrames(f.Proc, ft.Goroutine)
	if err != nil {
		return nil, "", err
	}
	for _, fr := range frames {
		if fr.PC != ft.PC {
			continue
		}
		bases, err := memory.NilBases(fr.Scope, ft.Addr, size)
		return bases, fr.Function, err
	}
	return nil, "", fmt.Errorf("no frame of goroutine %d at pc %#x", ft.Goroutine, ft.PC)
}
