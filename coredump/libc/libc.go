// Package libc is the C runtime's view of a process: which C library runs
// it (glibc or musl, dynamically or statically linked, which version, and
// every copy of a C runtime that is mapped), each thread's TLS block (the
// thread control block and the modules' static TLS), errno per thread
// computed from the code that really runs, glibc's abort message, and
// glibc malloc chunks.
//
// Offsets come from the library itself where it says them: the
// descriptors glibc exports for libthread_db (glibc nptl_db/structs.def),
// the code of __errno_location and relocations; every layout assumption
// is checked against the thread's own facts (its tid, its self pointer)
// before it is used. Three things depend on the library's release:
// musl's struct pthread (no descriptors) has one layout per range of
// releases (musl src/internal/pthread_impl.h), picked by the errno offset
// its __errno_location computes or by where every thread's tid is, never
// by a version string (an unnamed musl's version is then inferred from
// the layout); glibc without descriptors (a static executable) gets
// glibc 2.36's offsets; and malloc's free-list pointers are taken as
// safe-linked when the glibc version read is 2.32 or later, or unknown
// (glibc malloc/malloc.c PROTECT_PTR).
package libc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
)

// Flavor is a C library implementation.
type Flavor uint8

const (
	// None: no C library (a pure Go static binary).
	None Flavor = iota
	Glibc
	Musl
)

var flavorNames = [...]string{None: "none", Glibc: "glibc", Musl: "musl"}

func (f Flavor) String() string {
	if int(f) < len(flavorNames) {
		return flavorNames[f]
	}
	return fmt.Sprintf("Flavor(%d)", uint8(f))
}

// MarshalText writes the flavor by name.
func (f Flavor) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// Linkage says how the executable is linked.
type Linkage uint8

const (
	Dynamic Linkage = iota + 1
	Static
)

var linkageNames = [...]string{Dynamic: "dynamic", Static: "static"}

func (l Linkage) String() string {
	if int(l) < len(linkageNames) && linkageNames[l] != "" {
		return linkageNames[l]
	}
	return fmt.Sprintf("Linkage(%d)", uint8(l))
}

// MarshalText writes the linkage by name.
func (l Linkage) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// A Lib is one C runtime present in the process.
type Lib struct {
	Flavor Flavor
	Image  *coredump.Image
	// Embedded is set when the C library is linked into Image rather than
	// being Image: a static executable, or a shared object that carries
	// its own copy of libc.a.
	Embedded bool
	// Compat is set for a compatibility layer (gcompat) that serves one
	// C library's ABI on top of another.
	Compat  bool
	Version string
	// VersionSource says where Version was read.
	VersionSource string
	// Evidence says why Image is taken to hold this C library.
	Evidence string
}

func (l *Lib) String() string {
	s := l.Flavor.String()
	if l.Version != "" {
		s += " " + l.Version
	}
	how := "in"
	if l.Embedded {
		how = "embedded in"
	}
	return fmt.Sprintf("%s %s %s", s, how, l.Image.Name())
}

// Runtime is the C runtime's view of one process. Its methods compute
// views lazily and cache them: a Runtime is not safe for concurrent use.
type Runtime struct {
	Proc *coredump.Process
	Arch coredump.Arch

	// Flavor, Linkage and Version describe the C library the executable
	// uses (Libs[0]); Flavor is None for a binary without one.
	Flavor  Flavor
	Linkage Linkage
	Version string
	// Loader is the executable's PT_INTERP, "" for a static executable.
	Loader string
	// Libs lists every C runtime found; more than one is a libc mix.
	Libs []*Lib

	// Modules is the dynamic loader's list of loaded objects (the
	// link_map chain found through r_debug), nil for a static executable.
	Modules       []*Module
	ModulesSource string

	// Errno lists every implementation of __errno_location (and its
	// aliases ___errno_location and __errno) found in any image,
	// including hidden copies only .symtab names.
	Errno []*ErrnoImpl
	// Bindings says which implementation each image calls.
	Bindings []*ErrnoBinding

	// Threads holds each thread's TLS block and errno, in the order of
	// the process's threads.
	Threads []*Thread

	// Notes are what could not be read or decided.
	Notes []string

	elfs    map[*coredump.Image]*elfInfo
	glibc   *glibcLayout
	musl    *muslLayout
	unwind  map[int][]Frame
	heap    *heapState
	cranges map[*coredump.Image]*cRanges
}

var le = binary.LittleEndian

// ErrNoLibc is returned by calls that need a C library when the process
// has none.
var ErrNoLibc = errors.New("the process has no C library")

// Load reads the C runtime's view of p. It fails only when p has no
// threads (or, defensively, when target memory trips an internal error);
// what cannot be read is recorded in Notes.
func Load(p *coredump.Process) (r *Runtime, err error) {
	if p == nil || len(p.Threads) == 0 {
		return nil, errors.New("libc: process without threads")
	}
	defer func() {
		if e := recover(); e != nil {
			r, err = nil, fmt.Errorf("libc: internal error while reading the C runtime: %v", e)
		}
	}()
	r = &Runtime{Proc: p, Arch: p.Arch, elfs: map[*coredump.Image]*elfInfo{}, unwind: map[int][]Frame{},
		cranges: map[*coredump.Image]*cRanges{}}
	r.identify()
	r.readLayouts()
	r.readModules()
	r.findErrnoImpls()
	r.findBindings()
	r.addEmbeddedLibs()
	r.readThreads()
	return r, nil
}

// Lib returns the C runtime of the given image, or nil.
func (r *Runtime) Lib(im *coredump.Image) *Lib {
	for _, l := range r.Libs {
		if l.Image == im {
			return l
		}
	}
	return nil
}

// Thread returns the view of the thread with the given tid, or nil.
func (r *Runtime) Thread(tid int) *Thread {
	for _, t := range r.Threads {
		if t.TID == tid {
			return t
		}
	}
	return nil
}

// Mixed reports whether more than one C runtime is present.
func (r *Runtime) Mixed() bool { return len(r.Libs) > 1 }

func (r *Runtime) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for _, n := range r.Notes {
		if n == msg {
			return
		}
	}
	r.Notes = append(r.Notes, msg)
}

type runtimeKey struct{}

type loaded struct {
	rt  *Runtime
	err error
}

// Of returns the C runtime view of p, loaded once per process and shared
// by every layer that asks (p.Cached).
func Of(p *coredump.Process) (*Runtime, error) {
	v := p.Cached(runtimeKey{}, func() any {
		rt, err := Load(p)
		return &loaded{rt, err}
	}).(*loaded)
	return v.rt, v.err
}
