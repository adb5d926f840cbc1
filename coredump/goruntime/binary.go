// Package goruntime is the Go runtime's view of a process: its threads,
// Ms and goroutines, their stacks, panics and fatal errors, and the heap.
// Every runtime field offset comes from the executable's DWARF (Layout);
// binaries without DWARF use the tables in fallback_go*.go.
package goruntime

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/coreexplain/coreexplain/coredump"
)

// ErrNotGo is returned by LoadBinary for an executable that is not a Go
// program.
var ErrNotGo = errors.New("not a Go program")

// Binary is the Go executable of a process: its toolchain version, build
// settings, symbols and runtime type layout.
type Binary struct {
	Image     *coredump.Image
	Version   GoVersion
	BuildInfo *debug.BuildInfo
	Layout    *Layout
	// Stripped reports that the binary has no symbol table (-ldflags=-s).
	Stripped bool
}

// LoadBinary reads the Go-specific parts of the process's executable,
// once per process (a live process's before it is stopped).
func LoadBinary(img *coredump.Image) (*Binary, error) {
	if img == nil || img.HostPath == "" {
		return nil, errors.New("no executable")
	}
	res := img.Cached(binaryKey{}, func() any {
		b, err := loadBinary(img)
		return binaryResult{b, err}
	}).(binaryResult)
	return res.b, res.err
}

type binaryKey struct{}

type binaryResult struct {
	b   *Binary
	err error
}

func loadBinary(img *coredump.Image) (*Binary, error) {
	bi, err := buildinfo.ReadFile(img.HostPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (%v)", img.Path, ErrNotGo, err)
	}
	v, err := ParseGoVersion(bi.GoVersion)
	if err != nil {
		return nil, err
	}
	b := &Binary{Image: img, Version: v, BuildInfo: bi}
	f, err := img.ELF()
	if err != nil {
		return nil, err
	}
	if s := f.Section(".symtab"); s == nil {
		b.Stripped = true
	}
	b.Layout, err = newLayoutFromDWARF(f, v)
	if err != nil {
		t, ferr := fallbackFor(v)
		if ferr != nil {
			return nil, fmt.Errorf("%s: runtime layout: %v; %w", img.Path, err, ferr)
		}
		b.Layout = &Layout{Version: v, tables: t, structs: map[string]*Struct{}}
	}
	return b, nil
}

// Setting returns a build setting recorded in the binary, e.g. "CGO_ENABLED"
// or "-ldflags".
func (b *Binary) Setting(key string) string {
	for _, s := range b.BuildInfo.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// Symbol returns the run-time address of a Go symbol such as
// "runtime.allgs".
func (b *Binary) Symbol(name string) (uint64, bool) {
	a, _, ok := b.Global(name)
	return a, ok
}

// Global returns the run-time address and size of a global: from the
// symbol table, or, when the binary is stripped, from the runtime code
// that uses it (StrippedGlobal; size 0 when not known).
func (b *Binary) Global(name string) (addr, size uint64, ok bool) {
	if s, ok := b.Image.LookupSymbol(name); ok {
		return s.Addr, s.Size, true
	}
	if b.Stripped {
		if g, ok := b.StrippedGlobal(name); ok {
			return g.Addr, g.Size, true
		}
	}
	return 0, 0, false
}
