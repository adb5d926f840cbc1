package coredump

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Options control how a core is opened.
type Options struct {
	// Sysroot is the directory that holds the target's files (a container's
	// root filesystem, a copy of the host's libraries); paths recorded in
	// the core are looked up under it. "" means this machine's root.
	Sysroot string
	// Force accepts an executable whose build ID differs from the one in the
	// core.
	Force bool
	// TempDir is where a compressed core is decompressed to when memory
	// cannot hold it ("" = the system's temporary directory). The copy
	// never has a name there: nothing is left behind however the
	// program ends.
	TempDir string
}

// InputError reports an input that cannot be analysed at all: not a core,
// not ELF, an unsupported architecture, a core without threads.
type InputError struct {
	Path string
	Msg  string
	Err  error
}

func (e *InputError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Path, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

func (e *InputError) Unwrap() error { return e.Err }

// BuildIDMismatchError reports that the executable given is not the build
// that produced the core.
type BuildIDMismatchError struct {
	Exe      string
	ExeIDs   BuildIDs // of the file given
	CoreIDs  BuildIDs // recorded in the core's copy of the executable
	CorePath string   // the executable's path as the core records it
}

func (e *BuildIDMismatchError) Error() string {
	return fmt.Sprintf("%s does not match the core: its build ID is %s, but the core's executable %s has build ID %s",
		e.Exe, e.ExeIDs, e.CorePath, e.CoreIDs)
}

// pageSize of the target; Linux amd64 uses 4 KiB pages and arm64 kernels 4,
// 16 or 64 KiB, which AT_PAGESZ tells.
const defaultPageSize = 4096

// maxNoteBytes bounds the note segment read into memory.
const maxNoteBytes = 256 << 20

// Open opens the core file at corePath. exePath is the executable that
// produced it; when empty, the executable recorded in the core is used if it
// exists (under opts.Sysroot) and its build ID matches.
func Open(corePath, exePath string, opts Options) (*Process, error) {
	// Stat before opening: opening a FIFO would block until a writer
	// comes.
	if st, err := os.Stat(corePath); err != nil {
		return nil, &InputError{Path: corePath, Msg: "cannot open core", Err: err}
	} else if !st.Mode().IsRegular() {
		return nil, &InputError{Path: corePath, Msg: fmt.Sprintf("not a regular file (%s); save the core to a file first", kindOfFile(st.Mode()))}
	}
	f, err := os.Open(corePath)
	if err != nil {
		return nil, &InputError{Path: corePath, Msg: "cannot open core", Err: err}
	}
	comp, cp, warning, err := maybeDecompress(f, corePath, opts.TempDir)
	if err != nil {
		f.Close()
		return nil, err
	}
	if cp != nil {
		f.Close()
		f = cp.f
	}
	p, err := openCore(f, corePath, exePath, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	p.Compression = comp
	if cp != nil {
		// The copy has no name; closing it (p.Close) frees it.
		p.coreFile = cp.path()
		p.decompressed = cp.f
		if warning != "" {
			p.Warnings = append(p.Warnings, warning)
		}
	}
	p.Coredump = readCoredumpMeta(corePath)
	return p, nil
}

// maybeDecompress decompresses a compressed core into a copy (see
// coreCopy); for a plain core it returns a nil copy.
func maybeDecompress(f *os.File, corePath, dir string) (Compression, *coreCopy, string, error) {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return Uncompressed, nil, "", nil // openCore says what is wrong
	}
	var head [8]byte
	n, _ := f.ReadAt(head[:], 0) // a file shorter than a magic is uncompressed; reading it reports the error
	c := compressionOf(head[:n])
	if c == Uncompressed {
		return c, nil, "", nil
	}
	cp, warning, err := decompressCore(f, c, dir)
	if err != nil {
		return c, nil, "", &InputError{Path: corePath, Msg: fmt.Sprintf("cannot decompress the %s-compressed core", c), Err: err}
	}
	return c, cp, warning, nil
}

func openCore(f *os.File, corePath, exePath string, opts Options) (p *Process, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, &InputError{Path: corePath, Msg: fmt.Sprintf("internal error while reading the core: %v", r)}
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, &InputError{Path: corePath, Msg: "cannot stat core", Err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, &InputError{Path: corePath, Msg: "not a regular file"}
	}
	size := st.Size()
	var ident [20]byte
	n, _ := f.ReadAt(ident[:], 0) // a short read is the error below
	if n < len(ident) || string(ident[:4]) != elf.ELFMAG {
		return nil, &InputError{Path: corePath, Msg: "not an ELF core file (" + describeMagic(ident[:min(n, 4)], size) + ")"}
	}
	// Judge the identity from the raw header first: debug/elf's errors
	// about a foreign layout would not tell the user what is wrong.
	class, data := elf.Class(ident[elf.EI_CLASS]), elf.Data(ident[elf.EI_DATA])
	if class != elf.ELFCLASS64 || data != elf.ELFDATA2LSB {
		return nil, &InputError{Path: corePath, Msg: fmt.Sprintf("%s %s ELF file: only 64-bit little-endian cores are supported", class, data)}
	}
	if typ := elf.Type(le.Uint16(ident[16:])); typ != elf.ET_CORE {
		return nil, &InputError{Path: corePath, Msg: fmt.Sprintf("ELF file of type %s, not a core dump (did you swap CORE and BINARY?)", typ)}
	}
	arch := archOf(elf.Machine(le.Uint16(ident[18:])))
	if arch == ArchUnknown {
		return nil, &InputError{Path: corePath, Msg: fmt.Sprintf("core of machine %s: only x86-64 and aarch64 are supported", elf.Machine(le.Uint16(ident[18:])))}
	}
	progs, err := readCoreProgs(f, size)
	if errors.Is(err, errHeadersCut) {
		return nil, &InputError{Path: corePath, Msg: "truncated core", Err: err}
	}
	if err != nil {
		return nil, &InputError{Path: corePath, Msg: "malformed ELF headers", Err: err}
	}
	p = &Process{Arch: arch, Core: corePath, CoreSize: size, Sysroot: opts.Sysroot}

	var noteProgs, loads []elf.ProgHeader
	for _, ph := range progs {
		switch ph.Type {
		case elf.PT_NOTE:
			noteProgs = append(noteProgs, ph)
		case elf.PT_LOAD:
			loads = append(loads, ph)
		}
	}
	if len(noteProgs) == 0 {
		return nil, &InputError{Path: corePath, Msg: "core has no note segment: no threads, no registers"}
	}
	p.loadMappings(loads, size)
	for _, ph := range noteProgs {
		if end, ok := segmentEnd(ph); ok && end > size && p.Truncation == nil {
			p.Truncation = &Truncation{FileSize: size, ExpectedSize: end}
		} else if !ok {
			return nil, &InputError{Path: corePath, Msg: fmt.Sprintf("note segment at offset %#x of %d bytes lies beyond any possible file", ph.Off, ph.Filesz)}
		}
	}
	if p.Truncation != nil {
		for _, ph := range noteProgs {
			if end, _ := segmentEnd(ph); end > p.Truncation.ExpectedSize {
				p.Truncation.ExpectedSize = end
			}
		}
	}

	if err := p.readNotes(f, noteProgs, size); err != nil {
		return nil, err
	}
	if len(p.Threads) == 0 {
		return nil, &InputError{Path: corePath, Msg: "core records no threads (no NT_PRSTATUS note)"}
	}
	p.attachFileNames()

	mem, err := newCoreMemory(f, size, p)
	if err != nil {
		return nil, &InputError{Path: corePath, Msg: "cannot map core", Err: err}
	}
	p.src = mem
	p.loadImages()
	if err := p.pickExecutable(exePath, opts.Force); err != nil {
		p.Close()
		return nil, err
	}
	p.warnUnusableImages()
	return p, nil
}

// warnUnusableImages names the libraries whose files on this machine (or
// under the sysroot) cannot stand in for the ones the process had mapped:
// nothing is read from them, so their code, symbols and unwind tables are
// unavailable.
func (p *Process) warnUnusableImages() {
	where := "on this machine"
	if p.Sysroot != "" {
		where = "under " + p.Sysroot
	}
	for _, im := range p.Images {
		if im.IsExe {
			continue
		}
		switch {
		case im.Status == ImageMismatch:
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s differs from the file the process had mapped (%s); nothing is read from it: its code, symbols and unwind tables are unavailable (pass --sysroot with the target's files)",
				im.Path, im.Note))
		case im.Status == ImageMissing && !im.CoreIDs.Empty():
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s (build ID %s) is not %s: its code, symbols and unwind tables are unavailable",
				im.Path, im.CoreIDs, where))
		}
	}
}

// maxCoreSegments bounds the program header table; the kernel writes one
// header per mapping, and vm.max_map_count defaults to 65530.
const maxCoreSegments = 1 << 20

// readCoreProgs reads a 64-bit little-endian core's program headers. Cores
// need nothing else from the ELF structure, so a damaged section header
// table (which cores do not use) does not stop the analysis.
func readCoreProgs(f io.ReaderAt, size int64) ([]elf.ProgHeader, error) {
	var eh [64]byte
	if _, err := f.ReadAt(eh[:], 0); err != nil {
		return nil, fmt.Errorf("the core is cut short inside its 64-byte ELF header (%d bytes present): %w", size, errHeadersCut)
	}
	phoff := le.Uint64(eh[32:])
	phentsize := uint64(le.Uint16(eh[54:]))
	phnum := uint64(le.Uint16(eh[56:]))
	if phnum == 0xffff { // PN_XNUM: the count is in section header 0's sh_info
		shoff := le.Uint64(eh[40:])
		var sh [4]byte
		if shoff > uint64(size) || shoff+48 > uint64(size) {
			return nil, fmt.Errorf("e_phnum is PN_XNUM but section header 0 at %#x is outside the file", shoff)
		}
		if _, err := f.ReadAt(sh[:], int64(shoff)+44); err != nil {
			return nil, fmt.Errorf("section header 0: %w", err)
		}
		phnum = uint64(le.Uint32(sh[:]))
	}
	if phentsize < 56 || phentsize > 256 || phnum == 0 || phnum > maxCoreSegments {
		return nil, fmt.Errorf("program header table of %d entries of %d bytes", phnum, phentsize)
	}
	if phoff > uint64(size) || phnum*phentsize > uint64(size)-phoff {
		return nil, fmt.Errorf("the core is cut short inside its program header table (%d entries at offset %#x, %d bytes present): %w",
			phnum, phoff, size, errHeadersCut)
	}
	table := make([]byte, phnum*phentsize)
	if _, err := f.ReadAt(table, int64(phoff)); err != nil {
		return nil, fmt.Errorf("program headers: %w", err)
	}
	progs := make([]elf.ProgHeader, phnum)
	for i := range progs {
		e := table[uint64(i)*phentsize:]
		progs[i] = elf.ProgHeader{
			Type: elf.ProgType(le.Uint32(e[0:])), Flags: elf.ProgFlag(le.Uint32(e[4:])),
			Off: le.Uint64(e[8:]), Vaddr: le.Uint64(e[16:]), Paddr: le.Uint64(e[24:]),
			Filesz: le.Uint64(e[32:]), Memsz: le.Uint64(e[40:]), Align: le.Uint64(e[48:]),
		}
	}
	return progs, nil
}

var errHeadersCut = errors.New("nothing can be analysed")

// maxCoreOffset bounds the file offsets a segment may claim: an offset or
// size past it is corrupt, not a big core (and would overflow int64).
const maxCoreOffset = 1 << 56

// segmentEnd is the file offset just past the bytes of segment ph; ok is
// false when the header's numbers cannot describe a real file.
func segmentEnd(ph elf.ProgHeader) (end int64, ok bool) {
	if ph.Off > maxCoreOffset || ph.Filesz > maxCoreOffset {
		return 0, false
	}
	return int64(ph.Off + ph.Filesz), true
}

// loadMappings turns the core's PT_LOAD headers into the address space: one
// Mapping per segment, with how many of its bytes the file of size bytes
// holds, and records the truncation when the file is shorter than the
// segments say.
func (p *Process) loadMappings(loads []elf.ProgHeader, size int64) {
	var expected int64
	bad := 0
	for _, ph := range loads {
		_, ok := segmentEnd(ph)
		if !ok || ph.Memsz == 0 || ph.Vaddr+ph.Memsz < ph.Vaddr {
			if ph.Memsz != 0 || !ok {
				bad++
			}
			continue
		}
		m := &Mapping{Start: ph.Vaddr, End: ph.Vaddr + ph.Memsz, Perm: permOf(ph.Flags),
			Dumped: min(ph.Filesz, ph.Memsz), coreOff: int64(ph.Off)}
		if end := int64(ph.Off) + int64(m.Dumped); m.Dumped > 0 && end > size {
			m.Missing = uint64(end - max(size, int64(ph.Off)))
		}
		p.Mappings = append(p.Mappings, m)
	}
	var dropped int
	p.Mappings, dropped = sortMappings(p.Mappings)
	if dropped+bad > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%d overlapping, empty or malformed segments in the core were ignored", dropped+bad))
	}
	// The size the core should have: the end of the last byte a kept
	// mapping uses (bytes past a segment's memory size serve nothing).
	for _, m := range p.Mappings {
		if end := m.coreOff + int64(m.Dumped); m.Dumped > 0 && end > expected {
			expected = end
		}
	}
	if expected > size {
		p.Truncation = &Truncation{FileSize: size, ExpectedSize: expected}
		for _, m := range p.Mappings {
			if m.Missing > 0 {
				p.Truncation.Segments = append(p.Truncation.Segments, m)
			}
		}
	}
}

func describeMagic(b []byte, size int64) string {
	switch {
	case size == 0:
		return "the file is empty"
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd-compressed"
	case bytes.HasPrefix(b, []byte{0x04, 0x22, 0x4d, 0x18}):
		return "lz4-compressed"
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X'}):
		return "xz-compressed"
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "gzip-compressed"
	}
	return fmt.Sprintf("starts with % x", b)
}

func permOf(f elf.ProgFlag) Perm {
	var p Perm
	if f&elf.PF_R != 0 {
		p |= PermRead
	}
	if f&elf.PF_W != 0 {
		p |= PermWrite
	}
	if f&elf.PF_X != 0 {
		p |= PermExec
	}
	return p
}

func (p *Process) readNotes(f *os.File, progs []elf.ProgHeader, size int64) error {
	for _, ph := range progs {
		want := int64(ph.Filesz)
		if want > maxNoteBytes {
			return &InputError{Path: p.Core, Msg: fmt.Sprintf("note segment of %d bytes exceeds the %d-byte limit", want, maxNoteBytes)}
		}
		have := want
		if int64(ph.Off) >= size {
			have = 0
		} else if int64(ph.Off)+want > size {
			have = size - int64(ph.Off)
		}
		if have < want {
			if p.Truncation == nil {
				p.Truncation = &Truncation{FileSize: size, ExpectedSize: int64(ph.Off) + want}
			}
			p.Truncation.NotesMissing = true
		}
		buf := make([]byte, have)
		if _, err := f.ReadAt(buf, int64(ph.Off)); err != nil && err != io.EOF {
			return &InputError{Path: p.Core, Msg: "cannot read notes", Err: err}
		}
		notes, err := parseNotes(buf, int64(ph.Off))
		if err != nil && have == want {
			p.Warnings = append(p.Warnings, "notes: "+err.Error())
		}
		if p.notesDamage == "" {
			// Delve parses the note segment itself and sizes buffers
			// by the notes' own length fields: it only gets cores whose
			// notes we found intact.
			switch {
			case have < want:
				p.notesDamage = "the note segment is cut short by the truncation"
			case err != nil:
				p.notesDamage = err.Error()
			}
		}
		if err := p.applyNotes(notes); err != nil {
			return err
		}
	}
	return nil
}

func (p *Process) applyNotes(notes []note) error {
	var last *Thread
	for _, n := range notes {
		switch {
		case n.Type == NT_PRSTATUS && n.Name == "CORE":
			t, err := decodePRStatus(p.Arch, n.Desc)
			if err != nil {
				p.Warnings = append(p.Warnings, fmt.Sprintf("note at %#x: %v", n.Off, err))
				last = nil
				continue
			}
			p.Threads = append(p.Threads, t)
			last = t
		case n.Type == NT_PRPSINFO && n.Name == "CORE":
			if err := decodePRPSInfo(p, n.Desc); err != nil {
				p.Warnings = append(p.Warnings, err.Error())
			}
		case n.Type == NT_SIGINFO && n.Name == "CORE" && p.Signal == nil:
			si, err := decodeSigInfo(n.Desc)
			if err != nil {
				p.Warnings = append(p.Warnings, err.Error())
				continue
			}
			p.Signal = si
		case n.Type == NT_AUXV && n.Name == "CORE":
			p.Auxv = decodeAuxv(n.Desc)
		case n.Type == NT_FILE && n.Name == "CORE":
			files, err := decodeNTFile(n.Desc)
			if err != nil {
				p.Warnings = append(p.Warnings, err.Error())
			}
			p.Files = files
		case (n.Type == NT_PRFPREG && n.Name == "CORE") || (n.Type == NT_X86_XSTATE && n.Name == "LINUX"):
			if last != nil {
				last.HasFP = true
			}
		case n.Type == NT_ARM_TLS && n.Name == "LINUX":
			if last != nil && len(n.Desc) >= 8 {
				last.Regs.TP = le.Uint64(n.Desc)
			}
		}
	}
	return nil
}

// attachFileNames gives each mapping the file NT_FILE says backs it: the
// entry whose range holds the mapping's start. Both lists are walked once
// in address order, so a hostile NT_FILE of overlapping entries costs no
// more than a real one.
func (p *Process) attachFileNames() {
	files := append([]FileMapping(nil), p.Files...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Start < files[j].Start })
	j := 0
	for _, m := range p.Mappings {
		for j < len(files) && files[j].End <= m.Start && files[j].Start <= m.Start {
			j++
		}
		// Real entries do not overlap; look a few ahead for the one
		// holding m.Start in case earlier ones end before it.
		for k := j; k < len(files) && k < j+8 && files[k].Start <= m.Start; k++ {
			if fm := files[k]; m.Start < fm.End && m.Path == "" {
				m.Path = fm.Path
				m.Offset = fm.Offset + (m.Start - fm.Start)
				break
			}
		}
	}
}

// hostPath is where the target's file path is found on this machine.
func (p *Process) hostPath(target string) string {
	target = strings.TrimSuffix(target, " (deleted)")
	if p.Sysroot == "" {
		return target
	}
	// Clean against the root first: a path with "../" in the core must not
	// lead out of the sysroot.
	return filepath.Join(p.Sysroot, filepath.Clean("/"+target))
}

// coreHeaderPage returns the copy of an image's first page that the core
// holds, or nil.
func (p *Process) coreHeaderPage(m *Mapping) []byte {
	if m.Offset != 0 || m.Dumped == 0 {
		return nil
	}
	n := min(m.Dumped-m.Missing, m.Size(), defaultPageSize)
	if n < 64 {
		return nil
	}
	b := make([]byte, n)
	if err := p.src.readOwn(m, b, m.Start); err != nil {
		return nil
	}
	return b
}

// maxImages bounds the files examined as images; a real process maps a few
// hundred at most, and each costs a stat and a read of the file on disk.
const maxImages = 4096

// loadImages finds the ELF images among the file mappings and the vDSO.
func (p *Process) loadImages() {
	byPath := map[string][]*Mapping{}
	var order []string
	for _, m := range p.Mappings {
		if !m.FileBacked() {
			continue
		}
		if _, ok := byPath[m.Path]; !ok {
			order = append(order, m.Path)
		}
		byPath[m.Path] = append(byPath[m.Path], m)
	}
	if len(order) > maxImages {
		p.Warnings = append(p.Warnings, fmt.Sprintf("the core maps %d files; only the first %d are examined as ELF images", len(order), maxImages))
		order = order[:maxImages]
	}
	for _, path := range order {
		if im := p.newFileImage(path, byPath[path]); im != nil {
			p.Images = append(p.Images, im)
		}
	}
	if vdso, ok := p.Auxv.Lookup(AT_SYSINFO_EHDR); ok {
		if m := p.FindMapping(vdso); m != nil && m.Image == nil {
			im := &Image{Path: "[vdso]", Base: m.Start, End: m.End, Bias: m.Start, Status: ImageInMemory,
				Mappings: []*Mapping{m}, proc: p}
			m.Path = "[vdso]"
			m.Image = im
			if hdr := p.coreHeaderPage(m); hdr != nil {
				if h, err := parseELFHeader(hdr); err == nil {
					im.CoreIDs = buildIDsFromNotes(h, p.memReaderAt(m.Start), true)
					im.Bias = m.Start - firstLoadVaddr(h)
				}
			}
			p.Images = append(p.Images, im)
		}
	}
}

func firstLoadVaddr(h *elfHeader) uint64 {
	for _, ph := range h.Progs {
		if ph.Type == elf.PT_LOAD {
			return ph.Vaddr &^ (defaultPageSize - 1)
		}
	}
	return 0
}

// memReaderAt reads link-time addresses of an image loaded at bias.
type memReaderAt struct {
	p    *Process
	bias uint64
}

func (r memReaderAt) ReadAt(b []byte, off int64) (int, error) {
	return r.p.ReadMemory(b, uint64(off)+r.bias)
}

func (p *Process) memReaderAt(bias uint64) io.ReaderAt { return memReaderAt{p, bias} }

func (p *Process) newFileImage(path string, maps []*Mapping) *Image {
	im := &Image{Path: strings.TrimSuffix(path, " (deleted)"), Mappings: maps, proc: p,
		Base: maps[0].Start, End: maps[len(maps)-1].End}
	var head *Mapping
	for _, m := range maps {
		if m.Offset == 0 {
			head = m
			break
		}
	}
	coreHdr := []byte(nil)
	if head != nil {
		coreHdr = p.coreHeaderPage(head)
	}
	if coreHdr != nil && !bytes.HasPrefix(coreHdr, []byte(elf.ELFMAG)) {
		return nil // a mapped data file, not an ELF image
	}
	var h *elfHeader
	if coreHdr != nil {
		h, _ = parseELFHeader(coreHdr)
	}
	im.HostPath = p.hostPath(path)
	fileHdr, ferr := readFileHead(im.HostPath)
	switch {
	case ferr != nil && errors.Is(ferr, os.ErrNotExist):
		im.Status, im.Note, im.HostPath = ImageMissing, "not found on this machine", ""
	case ferr != nil:
		im.Status, im.Note, im.HostPath = ImageMissing, ferr.Error(), ""
	case !bytes.HasPrefix(fileHdr, []byte(elf.ELFMAG)):
		if h == nil {
			return nil // neither copy looks like ELF: a data file
		}
		im.Status, im.Note = ImageMismatch, "the file on this machine is not an ELF file"
	}
	if h == nil && im.HostPath != "" {
		h, _ = parseELFHeader(fileHdr)
	}
	if h == nil {
		if im.Status == 0 {
			return nil
		}
		return im // missing and unknown: keep it so the report can name it
	}
	if head != nil {
		// The mapping at file offset 0 holds the first PT_LOAD.
		im.Bias = head.Start - firstLoadVaddr(h)
	}
	if coreHdr != nil {
		im.CoreIDs = buildIDsFromNotes(h, bytes.NewReader(coreHdr), false)
	}
	if im.HostPath != "" && im.Status == 0 {
		if fh, err := parseELFHeader(fileHdr); err == nil {
			if hf, err := openRegular(im.HostPath); err == nil {
				im.FileIDs = buildIDsFromNotes(fh, hf, false)
				hf.Close()
			}
		}
		im.Status = verifyImage(im, coreHdr, fileHdr)
	}
	for _, m := range maps {
		m.Image = im
	}
	return im
}

func verifyImage(im *Image, coreHdr, fileHdr []byte) ImageStatus {
	if coreHdr == nil {
		im.Note = "the core holds no copy of its ELF header to compare with"
		return ImageUnverified
	}
	if same, ok := im.CoreIDs.Same(im.FileIDs); ok {
		if same {
			return ImageVerified
		}
		im.Note = fmt.Sprintf("build ID %s on this machine, %s in the core", im.FileIDs, im.CoreIDs)
		return ImageMismatch
	}
	if im.CoreIDs.Empty() && len(coreHdr) < len(fileHdr) && bytes.Equal(coreHdr, fileHdr[:len(coreHdr)]) {
		// A truncated core that ends inside the copy of the first page,
		// before the build ID note: the bytes it kept agree, the rest
		// cannot be compared. That is not a mismatch.
		im.Note = fmt.Sprintf("the core's copy of its first page is cut short at %d bytes, before the build ID; the bytes it holds match", len(coreHdr))
		return ImageUnverified
	}
	if !im.CoreIDs.Empty() || !im.FileIDs.Empty() {
		im.Note = fmt.Sprintf("build ID %s on this machine, %s in the core", im.FileIDs, im.CoreIDs)
		return ImageMismatch
	}
	n := min(len(coreHdr), len(fileHdr))
	if n > 0 && bytes.Equal(coreHdr[:n], fileHdr[:n]) {
		return ImageVerified
	}
	im.Note = "no build ID, and its first page differs from the core's copy"
	return ImageMismatch
}

// openRegular opens a regular file, refusing anything else without
// opening it: the paths come from the core (hostile) and opening a FIFO or
// a device such as /dev/tty, or reading /proc/kmsg, would block.
func openRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, kindOfFile(st.Mode()))
	}
	for _, dir := range []string{"/proc/", "/sys/", "/dev/"} {
		if strings.HasPrefix(path, dir) {
			return nil, fmt.Errorf("%s is a kernel pseudo-file, not read", path)
		}
	}
	return os.Open(path)
}

func kindOfFile(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

func readFileHead(path string) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, defaultPageSize)
	n, err := f.ReadAt(b, 0)
	if n == 0 && err != nil {
		return nil, err
	}
	return b[:n], nil
}

// pickExecutable decides which image is the executable and checks the file
// the user gave against it.
func (p *Process) pickExecutable(exePath string, force bool) error {
	var exe *Image
	if entry, ok := p.Auxv.Lookup(AT_ENTRY); ok {
		exe = p.FindImage(entry)
	}
	if exe == nil {
		if phdr, ok := p.Auxv.Lookup(AT_PHDR); ok {
			exe = p.FindImage(phdr)
		}
	}
	if exe == nil && len(p.Files) > 0 {
		// Without auxv the kernel lists the executable's mappings first.
		exe = p.FindImage(p.Files[0].Start)
	}
	if exePath == "" {
		if exe == nil {
			return &InputError{Path: p.Core, Msg: "no executable given and none recorded in the core; pass BINARY"}
		}
		if exe.Status != ImageVerified && exe.Status != ImageUnverified {
			return &InputError{Path: p.Core, Msg: fmt.Sprintf("no executable given and the one the core names (%s) is %s", exe.Path, exe.statusText())}
		}
		exe.IsExe = true
		p.Exe = exe
		return nil
	}
	abs, err := filepath.Abs(exePath)
	if err != nil {
		abs = exePath
	}
	fileHdr, err := readFileHead(abs)
	if err != nil {
		return &InputError{Path: exePath, Msg: "cannot read the executable", Err: err}
	}
	fh, err := parseELFHeader(fileHdr)
	if err != nil {
		return &InputError{Path: exePath, Msg: "the executable is not a 64-bit ELF file", Err: err}
	}
	if archOf(fh.Machine) != p.Arch {
		return &InputError{Path: exePath, Msg: fmt.Sprintf("the executable is for %s, the core for %s", fh.Machine, p.Arch.Machine())}
	}
	if fh.Type == elf.ET_CORE {
		return &InputError{Path: exePath, Msg: "this is a core file, not the executable"}
	}
	var ids BuildIDs
	if f, err := openRegular(abs); err == nil {
		ids = buildIDsFromNotes(fh, f, false)
		f.Close()
	}
	if exe == nil {
		p.Warnings = append(p.Warnings, "the core records no mapping of the executable; "+exePath+" is used unchecked")
		exe = &Image{Path: exePath, proc: p, Status: ImageUnverified, Note: "the core has no mapping of it"}
		p.Images = append(p.Images, exe)
	}
	exe.IsExe = true
	exe.HostPath, exe.FileIDs = abs, ids
	coreHdr := []byte(nil)
	for _, m := range exe.Mappings {
		if m.Offset == 0 {
			coreHdr = p.coreHeaderPage(m)
			break
		}
	}
	exe.Note = ""
	exe.Status = verifyImage(exe, coreHdr, fileHdr)
	if exe.Status == ImageMismatch {
		if !force {
			return &BuildIDMismatchError{Exe: exePath, ExeIDs: ids, CoreIDs: exe.CoreIDs, CorePath: exe.Path}
		}
		p.ForcedMismatch = true
		p.forceExecutable(exe, exePath, fh)
	}
	if entry, ok := p.Auxv.Lookup(AT_ENTRY); ok && fh.Entry != 0 && len(exe.Mappings) == 0 {
		exe.Bias = entry - fh.Entry
	}
	p.Exe = exe
	return nil
}

// forceExecutable decides, for --force, whether a binary whose build ID
// differs from the core's can stand in for the program. Its segments must
// lie where the core maps the executable, and the return addresses saved
// on the threads' stacks must follow call instructions in its code;
// otherwise its symbols would name the core's pcs after whatever code of
// its own lies there, and its runtime symbols would read the core's
// memory at the wrong addresses (a Go version of raw bytes,
// runtime.call2097152 frames). Such a binary stays ImageMismatch: nothing
// is read from it.
func (p *Process) forceExecutable(exe *Image, exePath string, fh *elfHeader) {
	why := p.layoutDiffers(exe, fh)
	if why == "" {
		if f, err := openRegular(exe.HostPath); err == nil {
			why = p.checkCallSites(exe, f)
			f.Close()
		}
	}
	if why != "" {
		exe.Status, exe.Note = ImageMismatch, exe.Note+"; "+why
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s does not match the core (%s); analysed anyway because of --force, "+
			"but nothing is read from it: function names, source lines, the Go runtime's view (Go version, goroutines) and the findings "+
			"that need them are not shown, only what the core itself holds (signal, threads, registers, mappings)", exePath, exe.Note))
		return
	}
	exe.Status = ImageUnverified
	p.Warnings = append(p.Warnings, fmt.Sprintf("%s does not match the core (%s); analysed anyway because of --force: "+
		"its segments lie where the core maps the executable and the return addresses on the stacks follow calls in its code, "+
		"but names and values read through it may be wrong", exePath, exe.Note))
}

// layoutDiffers compares the core's file mappings of the executable with
// where the kernel's ELF loader would map the given binary's PT_LOAD
// segments (fs/binfmt_elf.c: each segment from pagedown(p_vaddr) at file
// offset pagedown(p_offset), file-backed up to pageup(p_vaddr+p_filesz)).
// It returns what differs, "" when every segment is mapped where the core
// has it. A different program almost never has segments of the very same
// sizes; a rebuild of the same source with another build ID may.
func (p *Process) layoutDiffers(exe *Image, fh *elfHeader) string {
	page := uint64(defaultPageSize)
	if v, ok := p.Auxv.Lookup(AT_PAGESZ); ok && v >= 4096 && v&(v-1) == 0 {
		page = v
	}
	down := func(x uint64) uint64 { return x &^ (page - 1) }
	up := func(x uint64) uint64 { return (x + page - 1) &^ (page - 1) }
	var segs []elf.ProgHeader
	for _, ph := range fh.Progs {
		if ph.Type == elf.PT_LOAD && ph.Filesz > 0 {
			segs = append(segs, ph)
		}
	}
	if len(exe.Mappings) == 0 || len(segs) == 0 {
		return ""
	}
	bias := uint64(0)
	if fh.Type == elf.ET_DYN {
		for _, m := range exe.Mappings {
			if m.Offset == 0 {
				bias = m.Start - down(segs[0].Vaddr)
			}
		}
	}
	ends := make([]uint64, len(segs))
	for _, m := range exe.Mappings {
		i := slices.IndexFunc(segs, func(ph elf.ProgHeader) bool {
			return m.Offset >= down(ph.Off) && m.Offset < up(ph.Off+ph.Filesz)
		})
		if i < 0 {
			return fmt.Sprintf("the core maps its file offset %#x at %#x, which no segment of this binary holds", m.Offset, m.Start)
		}
		ph := segs[i]
		want := down(ph.Vaddr+bias) + (m.Offset - down(ph.Off))
		if m.Start != want || m.End > up(ph.Vaddr+bias+ph.Filesz) {
			return fmt.Sprintf("the core maps %#x-%#x at file offset %#x; this binary's segment there is %#x-%#x",
				m.Start, m.End, m.Offset, down(ph.Vaddr+bias), up(ph.Vaddr+bias+ph.Filesz))
		}
		ends[i] = max(ends[i], m.End)
	}
	for i, ph := range segs {
		if want := up(ph.Vaddr + bias + ph.Filesz); ends[i] != want {
			return fmt.Sprintf("this binary's segment %#x-%#x (file offset %#x) is not mapped so in the core", down(ph.Vaddr+bias), want, ph.Off)
		}
	}
	return ""
}

// coreMemory serves memory from the core file, and pages the kernel did not
// dump from the files that back them.
type coreMemory struct {
	f    *os.File
	data []byte // the core mapped read-only; nil when mmap failed
	size int64
	p    *Process
	// touched has a bit per faultWindow of data that reads have touched
	// since release last dropped the pages; resident counts them.
	touched  []atomic.Uint64
	resident atomic.Int64
}

// The kernel counts every page of the mapped core a read touched in the
// process's resident set until it is unmapped, and a walk over every
// goroutine's stack touches most of a core: without a bound the resident
// set would grow with the core, not with what the analysis keeps. A
// read fault maps the pages around the one touched too (the kernel's
// fault-around, 64 KiB by default), so touched memory is counted in
// windows of that size; past residentBudget of them, release drops them.
const (
	faultWindow    = 64 << 10
	residentBudget = 128 << 20
)

func newCoreMemory(f *os.File, size int64, p *Process) (*coreMemory, error) {
	c := &coreMemory{f: f, size: size, p: p}
	if size > 0 {
		if data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED); err == nil {
			c.data = data
			c.touched = make([]atomic.Uint64, (size/faultWindow+64)/64)
		}
	}
	return c, nil
}

// touch counts the windows of the mapping a read of n bytes at pos made
// resident, and releases them past the budget.
func (c *coreMemory) touch(pos int64, n int) {
	if c.touched == nil {
		return // not a mapping of ours
	}
	for w := pos / faultWindow; w <= (pos+int64(max(n, 1))-1)/faultWindow; w++ {
		bit := uint64(1) << (w % 64)
		if c.touched[w/64].Or(bit)&bit == 0 && c.resident.Add(faultWindow) > residentBudget {
			c.release()
		}
	}
}

// release drops the mapped core's pages from the resident set. The
// mapping is read-only and backed by the file: nothing is lost, a later
// read faults the page in again from the page cache.
//
// Darwin treats MADV_DONTNEED as a hint (madvise(2) there): the pages may
// stay counted, which costs memory accounting, not correctness.
func (c *coreMemory) release() {
	unix.Madvise(c.data, unix.MADV_DONTNEED)
	for i := range c.touched {
		c.touched[i].Store(0)
	}
	c.resident.Store(0)
}

func (c *coreMemory) close() error {
	if c.data != nil {
		unix.Munmap(c.data)
		c.data = nil
	}
	return c.f.Close()
}

// readCore copies bytes stored in the core for mapping m.
func (c *coreMemory) readCore(m *Mapping, b []byte, addr uint64) error {
	off := addr - m.Start
	avail := m.Dumped - m.Missing
	if off+uint64(len(b)) > avail {
		// Serve the part the file still holds, then say where it ends:
		// callers count the bytes before the error's address as read.
		if off < avail {
			if err := c.readCore(m, b[:avail-off], addr); err != nil {
				return err
			}
		}
		if off+uint64(len(b)) <= m.Dumped || off < m.Dumped {
			return &MemoryError{Addr: max(addr, m.Start+avail), Reason: Truncated, Mapping: m,
				Detail: fmt.Sprintf("the core file ends at byte %d", c.size)}
		}
		return &MemoryError{Addr: addr, Reason: NotDumped, Mapping: m}
	}
	pos := m.coreOff + int64(off)
	if c.data != nil {
		copy(b, c.data[pos:pos+int64(len(b))])
		c.touch(pos, len(b))
		return nil
	}
	if n, err := c.f.ReadAt(b, pos); err != nil {
		return &MemoryError{Addr: addr + uint64(n), Reason: Truncated, Mapping: m, Detail: err.Error()}
	}
	return nil
}

func (c *coreMemory) readOwn(m *Mapping, b []byte, addr uint64) error { return c.readCore(m, b, addr) }

func (c *coreMemory) readMapping(m *Mapping, b []byte, addr uint64) error {
	off := addr - m.Start
	if off < m.Dumped {
		k := min(uint64(len(b)), m.Dumped-off)
		if err := c.readCore(m, b[:k], addr); err != nil {
			return err
		}
		b, addr = b[k:], addr+k
		if len(b) == 0 {
			return nil
		}
	}
	return c.readFile(m, b, addr)
}

// readFile serves bytes of m that the core does not hold from its file.
func (c *coreMemory) readFile(m *Mapping, b []byte, addr uint64) error {
	if !m.FileBacked() {
		return &MemoryError{Addr: addr, Reason: NotDumped, Mapping: m, Detail: describeUndumped(m)}
	}
	im := m.Image
	if im == nil {
		return &MemoryError{Addr: addr, Reason: NotDumped, Mapping: m,
			Detail: "backed by a file that is not an ELF image; only images are read from disk"}
	}
	if im.Status == ImageMissing {
		return &MemoryError{Addr: addr, Reason: FileUnavailable, Mapping: m, Detail: im.Path + " " + im.Note}
	}
	if !im.Status.Usable() {
		return &MemoryError{Addr: addr, Reason: FileMismatch, Mapping: m, Detail: im.Path + ": " + im.Note}
	}
	if _, err := im.ELF(); err != nil && im.hostFile == nil {
		return &MemoryError{Addr: addr, Reason: FileUnavailable, Mapping: m, Detail: err.Error()}
	}
	hf := im.hostFile
	if hf == nil {
		return &MemoryError{Addr: addr, Reason: FileUnavailable, Mapping: m, Detail: im.Path}
	}
	fileOff := int64(m.Offset + (addr - m.Start))
	n, err := hf.ReadAt(b, fileOff)
	if n < len(b) {
		if err == io.EOF || err == nil {
			return &MemoryError{Addr: addr + uint64(n), Reason: PastEndOfFile, Mapping: m, Detail: im.HostPath}
		}
		return &MemoryError{Addr: addr + uint64(n), Reason: FileUnavailable, Mapping: m, Detail: err.Error()}
	}
	return nil
}

func describeUndumped(m *Mapping) string {
	if m.Perm == 0 {
		return "a PROT_NONE reservation (guard page or reserved address space)"
	}
	return "anonymous memory the core does not include (coredump_filter)"
}

func (c *coreMemory) servable(m *Mapping, from, to uint64) bool {
	lo, hi := from-m.Start, to-m.Start
	have := m.Dumped - m.Missing
	if hi <= have {
		return true
	}
	if max(lo, have) < min(hi, m.Dumped) {
		return false // part of it is cut off by truncation
	}
	im := m.Image
	return m.FileBacked() && im != nil && im.Status.Usable() && im.HostPath != ""
}
