package memory

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/go-delve/delve/pkg/dwarf/godwarf"
	"github.com/go-delve/delve/pkg/proc"
)

// Slice is a decoded and validated slice header.
type Slice struct {
	// Name is the expression the slice was read from ("" for a raw
	// address), Type its Go type ("[]uint8").
	Name     string `json:"name,omitempty"`
	Type     string `json:"type"`
	ElemType string `json:"elem_type"`
	ElemSize uint64 `json:"elem_size"`
	// Header is where the three words live, 0 when in a register.
	Header coredump.Addr `json:"header,omitempty"`
	Data   coredump.Addr `json:"data"`
	Len    uint64        `json:"len"`
	Cap    uint64        `json:"cap"`
	// Ranges classify the backing array [Data, Data+Cap*ElemSize) piece
	// by piece (at most maxSlicePieces).
	Ranges []SliceRange `json:"ranges,omitempty"`
	// Problems are what is wrong with the header itself: len > cap, a
	// size that overflows, a backing array that runs past its object.
	Problems []string `json:"problems,omitempty"`
	// Dangling is set when any part of the backing array is unmapped,
	// freed heap, a dead stack frame or a freed C chunk; Why says which.
	Dangling bool   `json:"dangling,omitempty"`
	Why      string `json:"dangling_why,omitempty"`
	// Confusion describes an array-pointer vs slice-header mix-up.
	Confusion string `json:"confusion,omitempty"`
}

// SliceRange is one classified piece of a slice's backing array.
type SliceRange struct {
	Start  coredump.Addr `json:"start"`
	End    coredump.Addr `json:"end"`
	Region *Region       `json:"region"`
}

// End is the first byte past the backing array's capacity.
func (s *Slice) End() uint64 { return uint64(s.Data) + s.Cap*s.ElemSize }

// Covers reports whether addr lies in the backing array.
func (s *Slice) Covers(addr uint64) bool {
	return s.Data != 0 && addr >= uint64(s.Data) && addr < s.End()
}

// Bounds for validating slices from untrusted memory.
const (
	maxSlicePieces = 64
	maxSliceBytes  = 1 << 47
)

// CheckSlice validates a slice header and classifies its backing array.
func (s *Space) CheckSlice(sl *Slice) *Slice {
	if sl.Len > sl.Cap {
		sl.Problems = append(sl.Problems, fmt.Sprintf("len %d > cap %d: not a valid slice header", sl.Len, sl.Cap))
	}
	if sl.Data == 0 {
		if sl.Cap > 0 {
			sl.Problems = append(sl.Problems, fmt.Sprintf("nil data pointer with cap %d", sl.Cap))
		}
		return sl
	}
	size := sl.Cap * sl.ElemSize
	if sl.ElemSize != 0 && (size/sl.ElemSize != sl.Cap || size > maxSliceBytes) {
		sl.Problems = append(sl.Problems, fmt.Sprintf("cap %d × %d-byte elements overflows the address space", sl.Cap, sl.ElemSize))
		size = 0
	}
	start, end := uint64(sl.Data), uint64(sl.Data)+max(size, 1)
	for a := start; a < end && len(sl.Ranges) < maxSlicePieces; {
		r := s.Classify(a)
		next := min(s.regionEnd(r), end)
		if next <= a {
			next = end
		}
		sl.Ranges = append(sl.Ranges, SliceRange{Start: coredump.Addr(a), End: coredump.Addr(next), Region: r})
		if r.Dangling && !sl.Dangling {
			sl.Dangling, sl.Why = true, fmt.Sprintf("bytes %#x-%#x of the backing array: %s", a-start, next-start, r.Why)
			if size == 0 {
				sl.Why = "its data pointer: " + r.Why
			}
		}
		if r.Heap != nil && r.Heap.Span != nil && r.Heap.Object != 0 && a == start {
			objEnd := uint64(r.Heap.Object) + r.Heap.Span.ElemSize
			if end > objEnd && size > 0 {
				sl.Problems = append(sl.Problems, fmt.Sprintf("the backing array runs %d bytes past the end of its heap object %s (%d bytes)",
					end-objEnd, r.Heap.Object, r.Heap.Span.ElemSize))
			}
		}
		a = next
	}
	if size > 0 && len(sl.Ranges) == maxSlicePieces && uint64(sl.Ranges[len(sl.Ranges)-1].End) < end {
		sl.Problems = append(sl.Problems, fmt.Sprintf("backing array classified only up to %s", sl.Ranges[len(sl.Ranges)-1].End))
	}
	sl.Confusion = s.headerLike(uint64(sl.Data), sl.ElemType)
	return sl
}

// RegionEnd is where the classification of r stops holding: the end of
// the heap object, stack part, mapping or unmapped gap.
func (s *Space) RegionEnd(r *Region) uint64 { return s.regionEnd(r) }

func (s *Space) regionEnd(r *Region) uint64 {
	a := uint64(r.Addr)
	switch {
	case r.Heap != nil && r.Heap.Object != 0 && r.Heap.Span != nil:
		return uint64(r.Heap.Object) + r.Heap.Span.ElemSize
	case r.Heap != nil && r.Heap.Span != nil && r.Kind == GoHeap:
		return (a/s.heap.PageSize() + 1) * s.heap.PageSize()
	case r.Stack != nil && r.Stack.Live != nil && !*r.Stack.Live:
		return uint64(r.Stack.SP)
	case r.Stack != nil:
		return uint64(r.Stack.Hi)
	case r.Mapping != nil:
		return uint64(r.Mapping.End)
	case r.Above != nil:
		return uint64(r.Above.Start)
	}
	return a + 1
}

// headerLike reports when the memory at addr looks like a slice header
// {pointer, len, cap} although it should hold elements of elemType: a
// pointer to a slice header taken where a pointer to its first element was
// meant (&s instead of &s[0]), or the other way round.
func (s *Space) headerLike(addr uint64, elemType string) string {
	if strings.ContainsAny(elemType, "*[") || strings.HasPrefix(elemType, "struct") || elemType == "string" ||
		strings.HasPrefix(elemType, "map") || strings.HasPrefix(elemType, "chan") || strings.HasPrefix(elemType, "func") ||
		strings.HasPrefix(elemType, "interface") || strings.Contains(elemType, ".") {
		return "" // elements that may legitimately hold pointers
	}
	var b [24]byte
	if _, err := s.p.ReadMemory(b[:], addr); err != nil {
		return ""
	}
	ptr, l, c := le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint64(b[16:])
	if ptr < nullPageLimit || l == 0 || l > c || c > 1<<32 || !s.p.Readable(ptr, 1) {
		return ""
	}
	r := s.Classify(ptr)
	if r.Kind != GoHeap && r.Kind != GoStack && r.Kind != CHeap && r.Kind != GoData {
		return ""
	}
	return fmt.Sprintf("the %s elements at %#x look like a slice header {data %#x, len %d, cap %d} pointing to %s: "+
		"the slice was probably built from a pointer to a slice header (&s) instead of to its first element (&s[0])",
		elemType, addr, ptr, l, c, r.Kind)
}

// SliceOfVariable decodes a Delve variable of slice type, or of a pointer
// to an array (*[N]T), which is checked as the slice arr[:].
func (s *Space) SliceOfVariable(v *proc.Variable) (*Slice, error) {
	if v == nil {
		return nil, errors.New("no variable")
	}
	if v.Unreadable != nil {
		return nil, fmt.Errorf("%s: %w", v.Name, v.Unreadable)
	}
	switch v.Kind {
	case reflect.Slice:
		st, ok := godwarf.ResolveTypedef(v.RealType).(*godwarf.SliceType)
		if !ok {
			return nil, fmt.Errorf("%s: slice of unknown element type", v.Name)
		}
		sl := &Slice{Name: v.Name, Type: v.TypeString(), ElemType: st.ElemType.String(), ElemSize: uint64(max(st.ElemType.Size(), 0)),
			Header: coredump.Addr(realAddr(v.Addr)), Data: coredump.Addr(v.Base), Len: uint64(v.Len), Cap: uint64(v.Cap)}
		if sl.Header == 0 && v.Addr != 0 {
			sl.Problems = append(sl.Problems, "the header is split across registers and stack slots (DWARF pieces); parts the compiler did not record read as 0")
		}
		return s.CheckSlice(sl), nil
	case reflect.Ptr:
		pt, ok := godwarf.ResolveTypedef(v.RealType).(*godwarf.PtrType)
		if !ok {
			break
		}
		at, ok := godwarf.ResolveTypedef(pt.Type).(*godwarf.ArrayType)
		if !ok || len(v.Children) != 1 {
			break
		}
		data := v.Children[0].Addr
		n := uint64(max(at.Count, 0))
		sl := &Slice{Name: v.Name, Type: v.TypeString(), ElemType: at.Type.String(), ElemSize: uint64(max(at.Type.Size(), 0)),
			Header: coredump.Addr(realAddr(v.Addr)), Data: coredump.Addr(data), Len: n, Cap: n}
		s.CheckSlice(sl)
		if c := s.headerLikeAny(data); c != "" {
			sl.Confusion = fmt.Sprintf("%s points at what looks like a slice header %s: a *[N]T made from &s (the header) instead of &s[0]", v.Name, c)
		}
		return sl, nil
	}
	return nil, fmt.Errorf("%s has type %s, not a slice or a pointer to an array", v.Name, v.TypeString())
}

// headerLikeAny describes a slice header at addr regardless of element
// type.
func (s *Space) headerLikeAny(addr uint64) string {
	var b [24]byte
	if _, err := s.p.ReadMemory(b[:], addr); err != nil {
		return ""
	}
	ptr, l, c := le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint64(b[16:])
	if ptr < nullPageLimit || l > c || c == 0 || c > 1<<32 || !s.p.Readable(ptr, 1) {
		return ""
	}
	return fmt.Sprintf("{data %#x, len %d, cap %d}", ptr, l, c)
}

// realAddr filters out the placeholder addresses Delve gives variables
// assembled from DWARF pieces (0xbeed…/0xbeef… in the top 16 bits).
func realAddr(a uint64) uint64 {
	if top := a >> 48; top == 0xbeed || top == 0xbeef {
		return 0
	}
	return a
}

// SliceExpr evaluates expr in a frame's scope and checks the slice.
func (s *Space) SliceExpr(sc *proc.EvalScope, expr string) (*Slice, error) {
	v, err := Eval(sc, expr)
	if err != nil {
		return nil, err
	}
	sl, err := s.SliceOfVariable(v)
	if sl != nil {
		sl.Name = expr
	}
	return sl, err
}

// SliceAt reads the slice header at addr as a []elemType and checks it.
func (s *Space) SliceAt(sc *proc.EvalScope, addr uint64, elemType string) (*Slice, error) {
	elemType = DWARFTypeName(strings.TrimPrefix(strings.TrimSpace(elemType), "[]"))
	if elemType == "" {
		return nil, errors.New("no element type")
	}
	sl, err := s.SliceExpr(sc, fmt.Sprintf("*(*[]%s)(%#x)", elemType, addr))
	if sl != nil {
		sl.Name = ""
		sl.Header = coredump.Addr(addr)
	}
	return sl, err
}
