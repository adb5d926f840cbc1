package goruntime

import (
	"fmt"
	"sort"
)

// fallbackTable is the runtime layout of one range of Go versions, for
// binaries built without DWARF. Tables are registered by the files
// fallback_go*.go and are generated from, and tested against, the DWARF of
// real binaries built with those toolchains.
type fallbackTable struct {
	MinVersion, MaxVersion GoVersion // inclusive
	Structs                map[string]*Struct
	consts                 map[string]int64
}

var fallbackTables []*fallbackTable

func registerFallback(t *fallbackTable) {
	fallbackTables = append(fallbackTables, t)
	sort.Slice(fallbackTables, func(i, j int) bool { return fallbackTables[i].MinVersion.Less(fallbackTables[j].MinVersion) })
}

func fallbackFor(v GoVersion) (*fallbackTable, error) {
	for _, t := range fallbackTables {
		if !v.Less(t.MinVersion) && !t.MaxVersion.Less(v) {
			return t, nil
		}
	}
	return nil, fmt.Errorf("the binary has no DWARF and there is no built-in runtime layout for %s", v)
}

func (t *fallbackTable) structOf(name string) (*Struct, error) {
	if t == nil {
		return nil, fmt.Errorf("type %s: no layout", name)
	}
	if s, ok := t.Structs[name]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("type %s: not in the built-in layout for Go %s-%s: %w", name, t.MinVersion, t.MaxVersion, ErrNoField)
}

func (t *fallbackTable) constOf(name string) (int64, bool) {
	if t == nil {
		return 0, false
	}
	v, ok := t.consts[name]
	return v, ok
}
