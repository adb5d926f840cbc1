package goruntime

import (
	"debug/dwarf"
	"math"
)

// The fallback_go1*.go tables are generated (fallback_gen_test.go) from the
// DWARF of binaries built with each toolchain and hold exactly the struct
// fields and constants the runtime readers ask Layout for. These helpers
// build them into the same Struct and Field values a DWARF layout yields,
// nested structs included, so Struct.Field walks "sched.sp" alike.

// fbField is one field of a fallback struct, with the fields of its own
// struct type that are asked for.
type fbField struct {
	name         string
	offset, size int64
	typ          string
	sub          []fbField
}

func fbF(name string, offset, size int64, typ string, sub ...fbField) fbField {
	return fbField{name: name, offset: offset, size: size, typ: typ, sub: sub}
}

// fbStruct builds a top-level struct layout.
func fbStruct(name string, size int64, fields ...fbField) *Struct {
	s := &Struct{Name: name, Size: size}
	for _, f := range fields {
		fl := Field{Name: f.name, Offset: f.offset, Size: f.size, Type: f.typ}
		if len(f.sub) > 0 {
			fl.sub = f.dwarfStruct()
		}
		s.Fields = append(s.Fields, fl)
	}
	return s
}

// dwarfType is the field's type as debug/dwarf would give it: a struct with
// the sub-fields, or a named leaf of the field's size.
func (f fbField) dwarfType() dwarf.Type {
	if len(f.sub) > 0 {
		return f.dwarfStruct()
	}
	return &dwarf.BasicType{CommonType: dwarf.CommonType{ByteSize: f.size, Name: f.typ}}
}

func (f fbField) dwarfStruct() *dwarf.StructType {
	st := &dwarf.StructType{CommonType: dwarf.CommonType{ByteSize: f.size, Name: f.typ}, StructName: f.typ, Kind: "struct"}
	for _, s := range f.sub {
		st.Field = append(st.Field, &dwarf.StructField{Name: s.name, ByteOffset: s.offset, Type: s.dwarfType()})
	}
	return st
}

// fallbackToolchains records, by Go minor version, the toolchain whose
// binaries a table was generated from (and is tested against).
var fallbackToolchains = map[int]string{}

// registerGenerated registers a generated table covering every patch
// release of toolchain's minor version.
func registerGenerated(toolchain string, structs map[string]*Struct, consts map[string]int64) {
	v, err := ParseGoVersion(toolchain)
	if err != nil {
		panic("fallback table for " + toolchain + ": " + err.Error())
	}
	fallbackToolchains[v.Minor] = toolchain
	registerFallback(&fallbackTable{
		MinVersion: GoVersion{Major: 1, Minor: v.Minor},
		MaxVersion: GoVersion{Major: 1, Minor: v.Minor, Patch: math.MaxInt32},
		Structs:    structs,
		consts:     consts,
	})
}
