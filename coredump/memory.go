package coredump

import (
	"errors"
	"fmt"
	"sort"
)

// Perm is the access a mapping allows.
type Perm uint8

const (
	PermRead Perm = 1 << iota
	PermWrite
	PermExec
)

func (p Perm) String() string {
	b := []byte("---")
	if p&PermRead != 0 {
		b[0] = 'r'
	}
	if p&PermWrite != 0 {
		b[1] = 'w'
	}
	if p&PermExec != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// A Mapping is one contiguous range of the address space with one set of
// permissions (one kernel VMA).
type Mapping struct {
	Start, End uint64
	Perm       Perm
	// Path is the backing file as the target named it, "" for anonymous
	// memory; live processes also carry the kernel's pseudo names such as
	// "[stack]" and "[vdso]".
	Path   string
	Offset uint64 // file offset of Start when Path names a file
	Image  *Image // the ELF image this range belongs to, if any

	// Dumped is how many bytes from Start the core file stores; Missing
	// is how many of those lie past the end of a truncated core.
	Dumped  uint64
	Missing uint64
	coreOff int64
}

// Size is the length of the mapping in bytes.
func (m *Mapping) Size() uint64 { return m.End - m.Start }

// Contains reports whether addr lies in the mapping.
func (m *Mapping) Contains(addr uint64) bool { return addr >= m.Start && addr < m.End }

// FileBacked reports whether a regular file backs the mapping.
func (m *Mapping) FileBacked() bool { return m.Path != "" && m.Path[0] != '[' }

func (m *Mapping) String() string {
	s := fmt.Sprintf("%#x-%#x %s", m.Start, m.End, m.Perm)
	if m.Path != "" {
		s += fmt.Sprintf(" %s+%#x", m.Path, m.Offset)
	}
	return s
}

// Unreadable says why bytes of the target's memory cannot be served.
type Unreadable uint8

const (
	// NotMapped: no mapping contains the address.
	NotMapped Unreadable = iota + 1
	// NotDumped: the address is mapped but the core holds no bytes for it
	// (PROT_NONE reservations, memory excluded by coredump_filter) and no
	// usable file backs it.
	NotDumped
	// Truncated: the core would hold the bytes but was cut short.
	Truncated
	// FileUnavailable: the file backing the page is not on this machine
	// (or not under the sysroot).
	FileUnavailable
	// FileMismatch: the file on this machine is a different build from the
	// one the process had mapped.
	FileMismatch
	// PastEndOfFile: the mapping reaches past the end of its file; the
	// process itself would have got SIGBUS there.
	PastEndOfFile
	// ReadFailed: a live process's kernel refused the read.
	ReadFailed
)

var unreadableText = [...]string{
	NotMapped:       "not mapped",
	NotDumped:       "not dumped",
	Truncated:       "beyond the end of the truncated core",
	FileUnavailable: "backing file unavailable",
	FileMismatch:    "backing file differs from the one mapped",
	PastEndOfFile:   "past the end of the backing file",
	ReadFailed:      "read failed",
}

func (u Unreadable) String() string {
	if int(u) < len(unreadableText) && unreadableText[u] != "" {
		return unreadableText[u]
	}
	return fmt.Sprintf("Unreadable(%d)", uint8(u))
}

// MemoryError is the error of a read of target memory that could not be
// served. Errors from ReadAt wrap one.
type MemoryError struct {
	Addr    uint64     // first byte that could not be read
	Reason  Unreadable // why
	Mapping *Mapping   // the mapping holding Addr, nil when NotMapped
	Detail  string     // what else is known, e.g. the file that was tried
}

func (e *MemoryError) Error() string {
	s := fmt.Sprintf("memory at %#x: %s", e.Addr, e.Reason)
	if e.Mapping != nil {
		s += fmt.Sprintf(" (in %s)", e.Mapping)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// AsMemoryError returns the *MemoryError inside err, if any.
func AsMemoryError(err error) (*MemoryError, bool) {
	var me *MemoryError
	ok := errors.As(err, &me)
	return me, ok
}

// memorySource serves the bytes of one mapping. Implementations: the core
// file (with file-backed pages from disk) and a live process's memory.
type memorySource interface {
	readMapping(m *Mapping, b []byte, addr uint64) error
	// readOwn reads only bytes the source itself holds (the core's copy,
	// the live process's memory), never a file from disk.
	readOwn(m *Mapping, b []byte, addr uint64) error
	servable(m *Mapping, from, to uint64) bool
	close() error
}

// FindMapping returns the mapping containing addr, or nil.
func (p *Process) FindMapping(addr uint64) *Mapping {
	ms := p.Mappings
	i := sort.Search(len(ms), func(i int) bool { return ms[i].End > addr })
	if i < len(ms) && ms[i].Start <= addr {
		return ms[i]
	}
	return nil
}

// MappingsAround returns the nearest mappings below and above addr, for
// explaining an address that no mapping contains.
func (p *Process) MappingsAround(addr uint64) (below, above *Mapping) {
	ms := p.Mappings
	i := sort.Search(len(ms), func(i int) bool { return ms[i].End > addr })
	if i > 0 {
		below = ms[i-1]
	}
	if i < len(ms) {
		above = ms[i]
	}
	return below, above
}

// ReadAt reads len(b) bytes of target memory at address addr. It implements
// io.ReaderAt over the address space; addresses at or above 1<<63 cannot be
// expressed and are reported as not mapped. A short read returns the bytes
// read and a *MemoryError for the first byte that could not be served.
func (p *Process) ReadAt(b []byte, addr int64) (int, error) {
	if addr < 0 {
		return 0, &MemoryError{Addr: uint64(addr), Reason: NotMapped}
	}
	return p.ReadMemory(b, uint64(addr))
}

// ReadMemory is ReadAt with an unsigned address.
func (p *Process) ReadMemory(b []byte, addr uint64) (int, error) {
	n := 0
	for n < len(b) {
		a := addr + uint64(n)
		if a < addr { // wrapped around the top of the address space
			return n, &MemoryError{Addr: a, Reason: NotMapped}
		}
		m := p.FindMapping(a)
		if m == nil {
			return n, &MemoryError{Addr: a, Reason: NotMapped}
		}
		chunk := b[n:]
		if rest := m.End - a; uint64(len(chunk)) > rest {
			chunk = chunk[:rest]
		}
		if err := p.src.readMapping(m, chunk, a); err != nil {
			if me, ok := err.(*MemoryError); ok {
				if me.Mapping == nil {
					me.Mapping = m
				}
				n += int(me.Addr - a)
			}
			return n, err
		}
		n += len(chunk)
	}
	return n, nil
}

// ReadUint64 reads a little-endian 64-bit word.
func (p *Process) ReadUint64(addr uint64) (uint64, error) {
	var b [8]byte
	if _, err := p.ReadMemory(b[:], addr); err != nil {
		return 0, err
	}
	return le.Uint64(b[:]), nil
}

// ReadUint32 reads a little-endian 32-bit word.
func (p *Process) ReadUint32(addr uint64) (uint32, error) {
	var b [4]byte
	if _, err := p.ReadMemory(b[:], addr); err != nil {
		return 0, err
	}
	return le.Uint32(b[:]), nil
}

// ReadCString reads a NUL-terminated string of at most max bytes. It reports
// whether the NUL was found within max.
func (p *Process) ReadCString(addr uint64, max int) (string, bool, error) {
	var out []byte
	var buf [256]byte
	for len(out) < max {
		k := min(len(buf), max-len(out))
		// Do not read across a page boundary in one go: the string may end
		// just before an unreadable page.
		if pageRest := int(4096 - (addr+uint64(len(out)))%4096); k > pageRest {
			k = pageRest
		}
		n, err := p.ReadMemory(buf[:k], addr+uint64(len(out)))
		for i := range n {
			if buf[i] == 0 {
				return string(append(out, buf[:i]...)), true, nil
			}
		}
		out = append(out, buf[:n]...)
		if err != nil {
			return string(out), false, err
		}
	}
	return string(out), false, nil
}

// Readable reports whether n bytes at addr can all be served, without
// reading them.
func (p *Process) Readable(addr uint64, n uint64) bool {
	for a := addr; a < addr+n; {
		m := p.FindMapping(a)
		if m == nil {
			return false
		}
		end := min(m.End, addr+n)
		if !p.src.servable(m, a, end) {
			return false
		}
		a = end
	}
	return true
}
