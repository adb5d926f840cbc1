package coredump

import (
	"fmt"
	"os"
	"sort"
	"sync"
)

// A Thread is one OS thread (LWP) of the process.
type Thread struct {
	TID  int
	Regs *Registers
	// CurSig is the signal the thread was handling at dump time
	// (pr_cursig); the kernel writes the dump signal into every thread.
	CurSig  Signal
	SigPend uint64 // pending signal mask
	SigHold uint64 // blocked signal mask
	HasFP   bool   // floating-point / extended state was recorded
}

// TP is the thread pointer (fs_base on amd64, tpidr_el0 on arm64).
func (t *Thread) TP() uint64 { return t.Regs.TP }

// Process is one view of a dead (core file) or live process.
type Process struct {
	Arch    Arch
	PID     int
	PPID    int
	UID     uint32
	Command string   // the kernel's comm (at most 15 bytes)
	Args    []string // command line; from NT_PRPSINFO for a core (cut at 80 bytes)
	// ArgsTruncated reports that Args came from a field the kernel cut short.
	ArgsTruncated bool

	// Threads in the order the core lists them: for a kernel core the
	// first is the thread that took the fatal signal.
	Threads  []*Thread
	Mappings []*Mapping // sorted by address, not overlapping
	Files    []FileMapping
	Images   []*Image
	Exe      *Image // the main executable, nil when unknown
	Auxv     Auxv
	// Signal is the core's NT_SIGINFO: the signal that made the kernel
	// write the core (nil for a live process or a core without it).
	Signal *SigInfo

	// Core is the path of the core file; "" for a live process.
	Core string
	// CoreSize and Truncation describe the core file; Truncation is nil
	// when the core is complete.
	CoreSize   int64
	Truncation *Truncation
	Sysroot    string
	// Compression is how the core file was compressed; a compressed core
	// is read from a decompressed copy without a name, in memory or in
	// Options.TempDir, that Close frees, and CoreSize is the decompressed
	// size.
	Compression Compression
	// Coredump is what systemd-coredump recorded about the crash next to
	// the core (nil when nothing was recorded).
	Coredump *CoredumpMeta

	// Warnings are problems met while opening that do not stop the
	// analysis (a library that differs from the one mapped, ...).
	Warnings []string
	// ForcedMismatch is set when --force made the analysis go on with an
	// executable whose build ID differs from the core's. When its segments
	// do not even lie where the core maps the executable, Exe stays
	// ImageMismatch and nothing is read from it.
	ForcedMismatch bool

	src      memorySource
	coreFile string // a path of the uncompressed core read, when not Core itself
	// decompressed is the decompressed copy of a compressed core, nil for
	// a plain one.
	decompressed *os.File
	// notesDamage says why the notes are not intact ("" when they are).
	notesDamage string
	closers     []func() error
	extCache    map[any]any
	extMu       sync.Mutex
	progress    Progress
}

// Decompressed is the open decompressed copy of a compressed core, which
// has no name, or nil when the core is plain. It stays valid until Close.
// A debugger started beside coreexplain reads the same copy when it
// inherits the descriptor (exec.Cmd.ExtraFiles): nothing is decompressed
// twice or written anywhere.
func (p *Process) Decompressed() *os.File { return p.decompressed }

// coreFilePath is the path of the uncompressed core file.
func (p *Process) coreFilePath() string {
	if p.coreFile != "" {
		return p.coreFile
	}
	return p.Core
}

// Live reports whether the process is a running one rather than a core.
func (p *Process) Live() bool { return p.Core == "" }

// Thread returns the thread with the given tid.
func (p *Process) Thread(tid int) *Thread {
	for _, t := range p.Threads {
		if t.TID == tid {
			return t
		}
	}
	return nil
}

// Close releases the files and memory the process holds.
func (p *Process) Close() error {
	var first error
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	p.closers = nil
	// Delve never closes the core it opened by path (its core target's
	// Close does nothing); dropping the views lets the garbage collector
	// close that descriptor, and free a decompressed copy in memory.
	p.extMu.Lock()
	p.extCache = nil
	p.extMu.Unlock()
	for _, im := range p.Images {
		im.close()
	}
	if p.src != nil {
		if err := p.src.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// OnClose registers f to run when the process is closed.
func (p *Process) OnClose(f func() error) { p.closers = append(p.closers, f) }

// Cached returns the value stored under key, computing it with f the first
// time. Higher layers use it to share expensive views (the Go runtime, the
// C runtime) of one process without this package knowing them.
func (p *Process) Cached(key any, f func() any) any {
	p.extMu.Lock()
	if p.extCache == nil {
		p.extCache = map[any]any{}
	}
	if v, ok := p.extCache[key]; ok {
		p.extMu.Unlock()
		return v
	}
	p.extMu.Unlock()
	v := f()
	p.extMu.Lock()
	defer p.extMu.Unlock()
	if old, ok := p.extCache[key]; ok {
		return old
	}
	p.extCache[key] = v
	return v
}

// Truncation describes a core file cut short (RLIMIT_CORE, a full disk, a
// copy that stopped): the kernel writes segments by ascending address, so the
// highest mappings lose their bytes first.
type Truncation struct {
	FileSize     int64 // bytes present
	ExpectedSize int64 // bytes the headers describe
	// Segments lists the mappings whose bytes are partly or wholly missing.
	Segments []*Mapping
	// NotesMissing reports that the note segment itself is incomplete, so
	// some threads or process facts are unknown.
	NotesMissing bool
}

// MissingBytes is how many bytes the core lacks.
func (t *Truncation) MissingBytes() int64 { return t.ExpectedSize - t.FileSize }

func (t *Truncation) String() string {
	return fmt.Sprintf("core truncated: %d of %d bytes present, %d bytes missing from %d mappings",
		t.FileSize, t.ExpectedSize, t.MissingBytes(), len(t.Segments))
}

// sortMappings orders mappings by start address and drops any that overlap
// an earlier one (a corrupt core); it returns how many were dropped.
func sortMappings(ms []*Mapping) ([]*Mapping, int) {
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Start < ms[j].Start })
	out := ms[:0]
	dropped := 0
	for _, m := range ms {
		if m.End <= m.Start || (len(out) > 0 && m.Start < out[len(out)-1].End) {
			dropped++
			continue
		}
		out = append(out, m)
	}
	return out, dropped
}
