package goruntime

import (
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Layout answers "where is field F of runtime type T, and what is constant
// C" for one Go binary. Every answer comes from the binary's DWARF; a binary
// without DWARF (-ldflags=-w) gets them from the fallback tables for its Go
// version (fallback.go), and Layout.FromDWARF says which.
type Layout struct {
	FromDWARF bool
	Version   GoVersion

	mu      sync.Mutex
	d       *dwarf.Data
	types   map[string]dwarf.Offset // struct/typedef name -> DIE offset
	consts  map[string]int64
	structs map[string]*Struct
	tables  *fallbackTable
}

// Struct is the layout of one struct type.
type Struct struct {
	Name   string
	Size   int64
	Fields []Field
}

// Field is one member of a Struct.
type Field struct {
	Name   string
	Offset int64
	Size   int64
	Type   string // the DWARF type name, e.g. "*runtime.m", "uint32"
	sub    *dwarf.StructType
}

// layoutRequests, when set, hears every name asked of any Layout. The
// fallback-table generator and its drift test (fallback_gen_test.go) use it
// to learn exactly what the runtime readers need.
var layoutRequests func(kind, typ, path string)

func noteRequest(kind, typ, path string) {
	if layoutRequests != nil {
		layoutRequests(kind, typ, path)
	}
}

// ErrNoField is wrapped by the errors of lookups that miss.
var ErrNoField = errors.New("no such field")

// runtimePackages are the compile units whose types and constants the
// runtime readers use; other units are skipped to keep loading fast on big
// binaries.
var runtimePackages = []string{"runtime", "internal/runtime/", "internal/abi", "sync", "internal/sync", "internal/godebug"}

func wantedUnit(name string) bool {
	for _, p := range runtimePackages {
		if name == strings.TrimSuffix(p, "/") || (strings.HasSuffix(p, "/") && strings.HasPrefix(name, p)) {
			return true
		}
	}
	return false
}

// newLayoutFromDWARF indexes the runtime's types and constants.
func newLayoutFromDWARF(f *elf.File, v GoVersion) (*Layout, error) {
	d, err := f.DWARF()
	if err != nil {
		return nil, err
	}
	l := &Layout{FromDWARF: true, Version: v, d: d, types: map[string]dwarf.Offset{},
		consts: map[string]int64{}, structs: map[string]*Struct{}}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("reading DWARF: %w", err)
		}
		if e == nil {
			break
		}
		if e.Tag == dwarf.TagCompileUnit {
			name, _ := e.Val(dwarf.AttrName).(string)
			if !wantedUnit(name) {
				r.SkipChildren()
			}
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if name == "" {
			if e.Children {
				r.SkipChildren()
			}
			continue
		}
		switch e.Tag {
		case dwarf.TagStructType, dwarf.TagTypedef, dwarf.TagBaseType, dwarf.TagPointerType, dwarf.TagArrayType:
			if _, ok := l.types[name]; !ok {
				l.types[name] = e.Offset
			}
		case dwarf.TagConstant:
			switch v := e.Val(dwarf.AttrConstValue).(type) {
			case int64:
				l.consts[name] = v
			case uint64:
				l.consts[name] = int64(v)
			}
		}
		if e.Children {
			r.SkipChildren()
		}
	}
	if _, ok := l.types["runtime.g"]; !ok {
		return nil, errors.New("DWARF has no runtime.g: not a Go binary, or built without runtime DWARF")
	}
	return l, nil
}

// Struct returns the layout of the named runtime struct type.
func (l *Layout) Struct(name string) (*Struct, error) {
	noteRequest("struct", name, "")
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.structs[name]; ok {
		return s, nil
	}
	if l.d == nil {
		s, err := l.tables.structOf(name)
		if err == nil {
			l.structs[name] = s
		}
		return s, err
	}
	off, ok := l.types[name]
	if !ok {
		return nil, fmt.Errorf("type %s: %w", name, ErrNoField)
	}
	t, err := l.d.Type(off)
	if err != nil {
		return nil, fmt.Errorf("type %s: %w", name, err)
	}
	st, ok := underlyingStruct(t)
	if !ok {
		return nil, fmt.Errorf("type %s is %T, not a struct", name, t)
	}
	s := structFromDWARF(name, st)
	l.structs[name] = s
	return s, nil
}

func underlyingStruct(t dwarf.Type) (*dwarf.StructType, bool) {
	for range 8 {
		switch x := t.(type) {
		case *dwarf.StructType:
			return x, true
		case *dwarf.TypedefType:
			t = x.Type
		default:
			return nil, false
		}
	}
	return nil, false
}

func structFromDWARF(name string, st *dwarf.StructType) *Struct {
	s := &Struct{Name: name, Size: st.ByteSize}
	for _, f := range st.Field {
		fl := Field{Name: f.Name, Offset: f.ByteOffset, Size: f.Type.Size(), Type: f.Type.String()}
		if sub, ok := underlyingStruct(f.Type); ok {
			fl.sub = sub
			if n := f.Type.Common().Name; n != "" {
				fl.Type = n
			}
		}
		s.Fields = append(s.Fields, fl)
	}
	return s
}

// Field returns the member called name, which may be a dotted path into
// nested structs ("sched.sp", "stack.lo").
func (s *Struct) Field(path string) (Field, error) {
	noteRequest("field", s.Name, path)
	cur := s
	var off int64
	parts := strings.Split(path, ".")
	for i, p := range parts {
		var found *Field
		for j := range cur.Fields {
			if cur.Fields[j].Name == p {
				found = &cur.Fields[j]
				break
			}
		}
		if found == nil {
			return Field{}, fmt.Errorf("%s.%s: %w", s.Name, path, ErrNoField)
		}
		off += found.Offset
		if i == len(parts)-1 {
			f := *found
			f.Offset = off
			return f, nil
		}
		if found.sub == nil {
			return Field{}, fmt.Errorf("%s.%s: %s is not a struct", s.Name, path, p)
		}
		cur = structFromDWARF(found.Type, found.sub)
	}
	return Field{}, fmt.Errorf("%s: empty field path", s.Name)
}

// Has reports whether the struct has the field path.
func (s *Struct) Has(path string) bool {
	_, err := s.Field(path)
	return err == nil
}

// Off returns the offset of field path; it is meant for fields every
// supported Go version has and reports a missing one as an error.
func (l *Layout) Off(typ, path string) (int64, error) {
	s, err := l.Struct(typ)
	if err != nil {
		return 0, err
	}
	f, err := s.Field(path)
	if err != nil {
		return 0, err
	}
	return f.Offset, nil
}

// Const returns the value of a runtime constant such as "runtime._Grunning".
func (l *Layout) Const(name string) (int64, bool) {
	noteRequest("const", name, "")
	if l.d == nil {
		return l.tables.constOf(name)
	}
	v, ok := l.consts[name]
	return v, ok
}

// Consts returns every constant whose name starts with prefix, e.g.
// "runtime.waitReason" or "runtime._G".
func (l *Layout) Consts(prefix string) map[string]int64 {
	noteRequest("consts", prefix, "")
	out := map[string]int64{}
	src := l.consts
	if l.d == nil {
		src = l.tables.consts
	}
	for k, v := range src {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}
