package coredump

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
)

// CoreOptions control WriteCore.
type CoreOptions struct {
	// Signal is the signal that ended the process; it goes into NT_SIGINFO
	// and into pr_cursig of every thread, as the kernel writes them. nil
	// writes a snapshot of a process that keeps running: the note then
	// says SIGSTOP sent by this process, as gdb's gcore does.
	Signal *SigInfo
	// FirstTID is the thread listed first, the one that took Signal
	// (debuggers select it); 0 keeps the main thread first.
	FirstTID int

	rawSigInfo []byte // the kernel's siginfo of Signal, when known
}

// CoreStats says what WriteCore wrote.
type CoreStats struct {
	Bytes    int64 // size of the core file
	Threads  int
	Mappings int    // PT_LOAD segments
	Memory   uint64 // bytes of memory stored
	// Unreadable is how many bytes of readable mappings could not be read
	// (pages past the end of a truncated file, ...); they are stored as
	// zeros.
	Unreadable uint64
}

// WriteCore writes an ELF core file of a stopped live process to w, the
// way the kernel writes one: NT_PRSTATUS with all registers and
// NT_FPREGSET and NT_X86_XSTATE for every thread, NT_PRPSINFO, NT_SIGINFO,
// NT_AUXV, NT_FILE, and a PT_LOAD segment for every mapping. Unlike the
// kernel's default coredump_filter, it stores the bytes of every readable
// mapping, file-backed code included, so the core is complete without the
// files. Memory is streamed; when w is an *os.File, pages of zeros become
// holes in a sparse file.
func (p *Process) WriteCore(w io.Writer, opts CoreOptions) (*CoreStats, error) {
	c, err := p.coreContents(opts)
	if err != nil {
		return nil, err
	}
	return c.write(w)
}

// coreContents is everything a core file holds but the memory bytes.
type coreContents struct {
	arch     Arch
	threads  []coreThread
	psinfo   []byte
	siginfo  []byte
	auxv     []byte
	files    []FileMapping
	pageSize uint64
	segments []coreSegment
	src      dumpSource
}

// coreThread is one thread's notes: NT_PRSTATUS first, then the others.
type coreThread struct {
	prstatus []byte
	extra    []note
}

type coreSegment struct {
	m      *Mapping
	filesz uint64
}

// dumpSource reads memory for a core being written.
type dumpSource interface {
	// dumpRange fills b with the bytes at addr inside m; what it cannot
	// read it leaves zero and counts in unreadable.
	dumpRange(m *Mapping, b []byte, addr uint64) (unreadable uint64, err error)
}

// prstatusInfo is what NT_PRSTATUS holds besides the registers.
type prstatusInfo struct {
	sig              Signal
	sigpend, sighold uint64
	pid, ppid        int
	pgrp, sid        int
	utimeUs, stimeUs int64
	regs             []uint64
	fpValid          bool
}

// encodePRStatus writes struct elf_prstatus (amd64 336 bytes, arm64 392).
func encodePRStatus(in prstatusInfo) []byte {
	b := make([]byte, prstatusReg+8*len(in.regs)+8)
	le.PutUint32(b[0:], uint32(in.sig)) // pr_info.si_signo
	le.PutUint16(b[prstatusCursig:], uint16(in.sig))
	le.PutUint64(b[prstatusSigpend:], in.sigpend)
	le.PutUint64(b[prstatusSighold:], in.sighold)
	le.PutUint32(b[prstatusPID:], uint32(in.pid))
	le.PutUint32(b[prstatusPPID:], uint32(in.ppid))
	le.PutUint32(b[40:], uint32(in.pgrp))
	le.PutUint32(b[44:], uint32(in.sid))
	le.PutUint64(b[48:], uint64(in.utimeUs/1e6)) // pr_utime
	le.PutUint64(b[56:], uint64(in.utimeUs%1e6))
	le.PutUint64(b[64:], uint64(in.stimeUs/1e6)) // pr_stime
	le.PutUint64(b[72:], uint64(in.stimeUs%1e6))
	for i, v := range in.regs {
		le.PutUint64(b[prstatusReg+8*i:], v)
	}
	if in.fpValid {
		le.PutUint32(b[prstatusReg+8*len(in.regs):], 1)
	}
	return b
}

// psinfoState maps a /proc state letter to pr_state and pr_sname.
func psinfoState(c byte) (byte, byte) {
	if i := bytes.IndexByte([]byte("RSDTZW"), c); i >= 0 {
		return byte(i), c
	}
	if c == 't' {
		return 3, 'T'
	}
	return 0, c
}

// encodePRPSInfo writes struct elf_prpsinfo (136 bytes).
func encodePRPSInfo(state byte, nice int8, flags uint64, uid, gid uint32, pid, ppid, pgrp, sid int, comm string, args []string) []byte {
	b := make([]byte, psinfoSize)
	b[0], b[1] = psinfoState(state)
	if state == 'Z' {
		b[2] = 1
	}
	b[3] = byte(nice)
	le.PutUint64(b[8:], flags)
	le.PutUint32(b[psinfoUID:], uid)
	le.PutUint32(b[20:], gid)
	le.PutUint32(b[psinfoPID:], uint32(pid))
	le.PutUint32(b[psinfoPPID:], uint32(ppid))
	le.PutUint32(b[32:], uint32(pgrp))
	le.PutUint32(b[36:], uint32(sid))
	copy(b[psinfoFname:psinfoFname+15], comm)
	var ps bytes.Buffer
	for i, a := range args {
		if i > 0 {
			ps.WriteByte(' ')
		}
		ps.WriteString(a)
	}
	copy(b[psinfoPsargs:psinfoPsargs+79], ps.Bytes())
	return b
}

// encodeSigInfo writes a 128-byte siginfo_t for the fields SigInfo has.
func encodeSigInfo(si *SigInfo) []byte {
	b := make([]byte, 128)
	le.PutUint32(b[0:], uint32(si.Signo))
	le.PutUint32(b[4:], uint32(si.Errno))
	le.PutUint32(b[8:], uint32(si.Code))
	if si.Synchronous() {
		le.PutUint64(b[16:], si.Addr)
	} else {
		le.PutUint32(b[16:], uint32(si.PID))
		le.PutUint32(b[20:], si.UID)
	}
	return b
}

func encodeAuxv(a Auxv) []byte {
	b := make([]byte, 16*(len(a)+1))
	for i, e := range a {
		le.PutUint64(b[16*i:], uint64(e.Type))
		le.PutUint64(b[16*i+8:], e.Value)
	}
	return b // ends with AT_NULL
}

// encodeNTFile writes NT_FILE: count, page size, (start, end, page
// offset) per file mapping, then the NUL-terminated names.
func encodeNTFile(files []FileMapping, pageSize uint64) []byte {
	var b bytes.Buffer
	var w [8]byte
	put := func(v uint64) { le.PutUint64(w[:], v); b.Write(w[:]) }
	put(uint64(len(files)))
	put(pageSize)
	for _, f := range files {
		put(f.Start)
		put(f.End)
		put(f.Offset / pageSize)
	}
	for _, f := range files {
		b.WriteString(f.Path)
		b.WriteByte(0)
	}
	return b.Bytes()
}

func appendNote(b *bytes.Buffer, name string, typ NoteType, desc []byte) {
	var h [12]byte
	le.PutUint32(h[0:], uint32(len(name)+1))
	le.PutUint32(h[4:], uint32(len(desc)))
	le.PutUint32(h[8:], uint32(typ))
	b.Write(h[:])
	b.WriteString(name)
	b.WriteByte(0)
	pad(b)
	b.Write(desc)
	pad(b)
}

func pad(b *bytes.Buffer) {
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
}

func (c *coreContents) notes() []byte {
	var b bytes.Buffer
	for i, t := range c.threads {
		appendNote(&b, "CORE", NT_PRSTATUS, t.prstatus)
		if i == 0 {
			appendNote(&b, "CORE", NT_PRPSINFO, c.psinfo)
			appendNote(&b, "CORE", NT_SIGINFO, c.siginfo)
			appendNote(&b, "CORE", NT_AUXV, c.auxv)
			appendNote(&b, "CORE", NT_FILE, encodeNTFile(c.files, c.pageSize))
		}
		for _, n := range t.extra {
			appendNote(&b, n.Name, n.Type, n.Desc)
		}
	}
	return b.Bytes()
}

// maxSegments is what e_phnum can count without extended numbering.
const maxSegments = 0xfffe

// dumpChunk is how much memory is read at a time.
const dumpChunk = 1 << 20

func (c *coreContents) write(w io.Writer) (*CoreStats, error) {
	if len(c.segments)+1 > maxSegments {
		return nil, fmt.Errorf("writing core: %d mappings exceed the %d an ELF header can count", len(c.segments), maxSegments)
	}
	notes := c.notes()
	const ehdrSize, phdrSize = 64, 56
	phnum := 1 + len(c.segments)
	notesOff := uint64(ehdrSize + phdrSize*phnum)
	off := alignUp(notesOff+uint64(len(notes)), c.pageSize)
	dataStart := off

	var hdr bytes.Buffer
	var ident [elf.EI_NIDENT]byte
	copy(ident[:], elf.ELFMAG)
	ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	hdr.Write(ident[:])
	put16 := func(v uint16) { var x [2]byte; le.PutUint16(x[:], v); hdr.Write(x[:]) }
	put32 := func(v uint32) { var x [4]byte; le.PutUint32(x[:], v); hdr.Write(x[:]) }
	put64 := func(v uint64) { var x [8]byte; le.PutUint64(x[:], v); hdr.Write(x[:]) }
	put16(uint16(elf.ET_CORE))
	put16(uint16(c.arch.Machine()))
	put32(uint32(elf.EV_CURRENT))
	put64(0)        // e_entry
	put64(ehdrSize) // e_phoff
	put64(0)        // e_shoff
	put32(0)        // e_flags
	put16(ehdrSize)
	put16(phdrSize)
	put16(uint16(phnum))
	put16(0) // e_shentsize
	put16(0) // e_shnum
	put16(0) // e_shstrndx
	phdr := func(typ elf.ProgType, flags elf.ProgFlag, off, vaddr, filesz, memsz, align uint64) {
		put32(uint32(typ))
		put32(uint32(flags))
		put64(off)
		put64(vaddr)
		put64(0) // p_paddr
		put64(filesz)
		put64(memsz)
		put64(align)
	}
	phdr(elf.PT_NOTE, 0, notesOff, 0, uint64(len(notes)), 0, 4)
	st := &CoreStats{Threads: len(c.threads), Mappings: len(c.segments)}
	for _, s := range c.segments {
		var flags elf.ProgFlag
		if s.m.Perm&PermRead != 0 {
			flags |= elf.PF_R
		}
		if s.m.Perm&PermWrite != 0 {
			flags |= elf.PF_W
		}
		if s.m.Perm&PermExec != 0 {
			flags |= elf.PF_X
		}
		phdr(elf.PT_LOAD, flags, off, s.m.Start, s.filesz, s.m.Size(), c.pageSize)
		off += s.filesz
		st.Memory += s.filesz
	}
	st.Bytes = int64(off)

	sw := newSparseWriter(w)
	if _, err := sw.Write(hdr.Bytes()); err != nil {
		return nil, err
	}
	if _, err := sw.Write(notes); err != nil {
		return nil, err
	}
	sw.skip(int64(dataStart) - int64(hdr.Len()+len(notes)))
	buf := make([]byte, dumpChunk)
	for _, s := range c.segments {
		for done := uint64(0); done < s.filesz; {
			n := min(uint64(len(buf)), s.filesz-done)
			b := buf[:n]
			clear(b)
			bad, err := c.src.dumpRange(s.m, b, s.m.Start+done)
			if err != nil {
				return nil, fmt.Errorf("writing core: memory of %s: %w", s.m, err)
			}
			st.Unreadable += bad
			if err := sw.writePages(b, c.pageSize); err != nil {
				return nil, err
			}
			done += n
		}
	}
	if err := sw.finish(int64(off)); err != nil {
		return nil, err
	}
	return st, nil
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// sparseWriter writes a file sequentially, turning runs of zero pages into
// holes when the destination is a regular file.
type sparseWriter struct {
	w       *bufio.Writer
	f       *os.File // nil when w cannot seek
	start   int64    // file offset the core starts at
	pos     int64    // file offset written up to
	pending int64    // zero bytes not written yet
}

func newSparseWriter(w io.Writer) *sparseWriter {
	sw := &sparseWriter{w: bufio.NewWriterSize(w, 1<<20)}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
				sw.f, sw.start, sw.pos = f, pos, pos
			}
		}
	}
	return sw
}

func (sw *sparseWriter) Write(b []byte) (int, error) {
	if err := sw.flushZeros(); err != nil {
		return 0, err
	}
	n, err := sw.w.Write(b)
	sw.pos += int64(n)
	if err != nil {
		return n, fmt.Errorf("writing core: %w", err)
	}
	return n, nil
}

func (sw *sparseWriter) skip(n int64) { sw.pending += n }

var zeroPage = make([]byte, 64<<10)

// writePages writes b, a whole number of pages, leaving zero pages as
// holes.
func (sw *sparseWriter) writePages(b []byte, pageSize uint64) error {
	for len(b) > 0 {
		n := min(len(b), int(pageSize))
		if n <= len(zeroPage) && bytes.Equal(b[:n], zeroPage[:n]) {
			sw.pending += int64(n)
		} else if _, err := sw.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (sw *sparseWriter) flushZeros() error {
	if sw.pending == 0 {
		return nil
	}
	if sw.f != nil {
		if err := sw.w.Flush(); err != nil {
			return fmt.Errorf("writing core: %w", err)
		}
		if _, err := sw.f.Seek(sw.pending, io.SeekCurrent); err != nil {
			return fmt.Errorf("writing core: %w", err)
		}
		sw.pos += sw.pending
		sw.pending = 0
		return nil
	}
	for sw.pending > 0 {
		n := min(sw.pending, int64(len(zeroPage)))
		if _, err := sw.w.Write(zeroPage[:n]); err != nil {
			return fmt.Errorf("writing core: %w", err)
		}
		sw.pending -= n
		sw.pos += n
	}
	return nil
}

// finish writes what is buffered and gives the file its full size when it
// ends in a hole.
func (sw *sparseWriter) finish(size int64) error {
	if sw.f != nil && sw.pending > 0 {
		if err := sw.w.Flush(); err != nil {
			return fmt.Errorf("writing core: %w", err)
		}
		if err := sw.f.Truncate(sw.pos + sw.pending); err != nil {
			return fmt.Errorf("writing core: %w", err)
		}
		if _, err := sw.f.Seek(sw.pos+sw.pending, io.SeekStart); err != nil {
			return fmt.Errorf("writing core: %w", err)
		}
		sw.pos += sw.pending
		sw.pending = 0
	}
	if err := sw.flushZeros(); err != nil {
		return err
	}
	if err := sw.w.Flush(); err != nil {
		return fmt.Errorf("writing core: %w", err)
	}
	if sw.f != nil && sw.pos-sw.start != size {
		return fmt.Errorf("writing core: wrote %d bytes, the headers describe %d", sw.pos-sw.start, size)
	}
	return nil
}
