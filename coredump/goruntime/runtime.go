package goruntime

import (
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/gobin"
)

// Limits on walks over target memory, which is hostile data.
const (
	maxGoroutines = 1 << 24 // allglen above this is corrupt
	maxMs         = 1 << 16 // m.alllink chains longer than this are corrupt
	maxArgs       = 4096
	maxArgLen     = 1 << 16
	maxStringLen  = 1 << 20 // strings decoded for reports
)

// Runtime is the Go runtime's view of one process: its globals, Ms,
// goroutines and threads, read from memory with offsets from the binary's
// DWARF. Load builds it once per process.
type Runtime struct {
	Proc    *coredump.Process
	Binary  *Binary
	Version GoVersion
	// Funcs is the executable's pclntab.
	Funcs *FuncTable

	// BuildVersion is runtime.buildVersion as the process holds it.
	BuildVersion string
	// Args is the full command line (runtime.argslice), unlike the
	// core's NT_PRPSINFO which the kernel cuts at 80 bytes.
	Args []string
	// IsCgo reports a binary linked with cgo (runtime.iscgo).
	IsCgo bool

	// Ms are the runtime's Ms (allm through m.alllink), newest first.
	Ms []*M
	// Gs are the goroutines of allgs that are not dead, in allgs order.
	Gs []*G
	// Dead are the dead goroutines of allgs: a dead goroutine's stack,
	// if it kept one, is cached for reuse.
	Dead []*G
	// AllGLen is runtime.allglen, dead goroutines included.
	AllGLen int

	// Backlog is the runtime's print output from before it started to
	// panic (runtime.printBacklog, oldest first).
	Backlog string

	// Notes say what could not be read, and why.
	Notes []string

	off     offsets
	states  map[uint32]string // goroutine status names
	waits   []string          // wait reason names by value
	gByAddr map[uint64]*G
	mByAddr map[uint64]*M

	threadsOnce  sync.Once
	threads      []*Thread
	alsoDying    []*Thread
	crashOnce    sync.Once
	crash        *Crash
	crashErr     error
	pcOnce       sync.Once
	pcs          *pcCache
	types        *typeReader
	md           *moduleData
	clines       *cLineTable
	clinesDone   bool
	errnoTable   []string
	boundsFmt    []string
	boundsNegFmt []string
	found        map[string]discovered

	bucketsMu sync.Mutex
	buckets   map[int][]*Bucket // Buckets by depth bound
	unwinders sync.Pool         // *unwinder, buffers reused by Stack

	systemMu     sync.Mutex
	systemStarts map[uint64]bool // IsSystem by start pc
}

// ErrNoRuntime is returned by Load for a process whose executable is not a
// Go program.
var ErrNoRuntime = errors.New("no Go runtime in the process")

type runtimeKey struct{}

type loadResult struct {
	r   *Runtime
	err error
}

// Load returns the Go runtime view of p, reading it on first use and
// sharing it (Process.Cached) with every later caller.
func Load(p *coredump.Process) (*Runtime, error) {
	res := p.Cached(runtimeKey{}, func() any {
		r, err := load(p)
		return &loadResult{r, err}
	}).(*loadResult)
	return res.r, res.err
}

func load(p *coredump.Process) (r *Runtime, err error) {
	defer func() {
		if e := recover(); e != nil {
			r, err = nil, fmt.Errorf("goruntime: internal error reading the Go runtime: %v", e)
		}
	}()
	if p.Exe == nil {
		return nil, fmt.Errorf("%w: the executable is unknown", ErrNoRuntime)
	}
	if p.Arch != coredump.ArchAMD64 {
		return nil, fmt.Errorf("goruntime: %s processes are not supported yet (amd64 only)", p.Arch)
	}
	b, err := LoadBinary(p.Exe)
	if err != nil {
		if errors.Is(err, ErrNotGo) {
			return nil, fmt.Errorf("%w: %v", ErrNoRuntime, err)
		}
		return nil, err
	}
	r = &Runtime{Proc: p, Binary: b, Version: b.Version, gByAddr: map[uint64]*G{}, mByAddr: map[uint64]*M{}}
	if b.Version.Less(MinVersion) {
		r.note("%s is older than the oldest release this tool reads (%s): expect gaps", b.Version, MinVersion)
	}
	if err := r.loadFuncTable(); err != nil {
		return nil, err
	}
	if err := r.off.resolve(b.Layout); err != nil {
		return nil, fmt.Errorf("goruntime: %s: %w", p.Exe.Name(), err)
	}
	r.loadStateNames()
	r.readProcessFacts()
	if err := r.readMs(); err != nil {
		r.note("%v", err)
	}
	if err := r.readGs(); err != nil {
		return nil, err
	}
	r.types = newTypeReader(r)
	return r, nil
}

func (r *Runtime) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for _, n := range r.Notes {
		if n == msg {
			return
		}
	}
	r.Notes = append(r.Notes, msg)
}

// global returns the run-time address and size of a Go global: from the
// symbol table, or for a stripped binary from the code that uses it
// (Binary.Global), or for the few the Binary's finder does not know, from
// the runtime's data in the process (discover).
func (r *Runtime) global(name string) (uint64, uint64, bool) {
	if a, size, ok := r.Binary.Global(name); ok {
		return a, size, true
	}
	return r.discover(name)
}

// loadFuncTable parses .gopclntab with the text base and funcdata base
// read from runtime.firstmoduledata.
func (r *Runtime) loadFuncTable() error {
	img := r.Binary.Image
	sec, data, err := img.Section(".gopclntab")
	if err != nil {
		return fmt.Errorf("goruntime: %w", err)
	}
	h, err := gobin.ParseHeader(data)
	if err != nil {
		return fmt.Errorf("goruntime: %s: %w", img.Name(), err)
	}
	md, mdErr := r.findModuleData(sec.Addr+img.Bias, h)
	var text, gofuncAddr uint64
	switch {
	case md != nil:
		text, gofuncAddr = md.text, md.gofunc
	default:
		r.note("runtime.firstmoduledata not found (%v): text base from the symbol table", mdErr)
		if a, _, ok := r.global("runtime.text"); ok {
			text = a
		} else if pcHeaderHasTextStart(r.Version) && h.TextStart != 0 {
			text = h.TextStart + img.Bias
		} else if f, err := img.ELF(); err == nil && f.Section(".text") != nil {
			text = f.Section(".text").Addr + img.Bias
		}
		if a, _, ok := r.global("go:func.*"); ok {
			gofuncAddr = a
		}
	}
	var gofunc []byte
	if gofuncAddr != 0 {
		gofunc = r.staticBytes(gofuncAddr - img.Bias)
	}
	var ids funcIDs
	ok := false
	if r.Binary.Layout != nil {
		ids, ok = funcIDsFromDWARF(r.Binary.Layout)
	}
	t, err := newFuncTable(data, text, gofunc, ids)
	if err != nil {
		return fmt.Errorf("goruntime: %s: %w", img.Name(), err)
	}
	if !ok {
		learnFuncIDs(t)
	}
	if gofunc == nil {
		r.note("funcdata base unknown: inlined frames are not expanded")
	}
	r.Funcs = t
	return nil
}

type funcTableKey struct{}

type funcTableResult struct {
	t   *FuncTable
	err error
}

// ReadFuncTable reads the executable's pclntab on its own, for a Go
// binary whose runtime layout is unknown (no DWARF and no built-in table
// for its release): its frames can still be named and unwound.
func ReadFuncTable(p *coredump.Process) (*FuncTable, error) {
	res := p.Cached(funcTableKey{}, func() any {
		if r, err := Load(p); err == nil {
			return &funcTableResult{t: r.Funcs}
		}
		if p.Exe == nil || p.Exe.HostPath == "" {
			return &funcTableResult{err: ErrNoRuntime}
		}
		bi, err := buildinfo.ReadFile(p.Exe.HostPath)
		if err != nil {
			return &funcTableResult{err: fmt.Errorf("%w: %v", ErrNoRuntime, err)}
		}
		v, _ := ParseGoVersion(bi.GoVersion)
		r := &Runtime{Proc: p, Binary: &Binary{Image: p.Exe, Version: v, BuildInfo: bi}, Version: v}
		if err := r.loadFuncTable(); err != nil {
			return &funcTableResult{err: err}
		}
		return &funcTableResult{t: r.Funcs}
	}).(*funcTableResult)
	return res.t, res.err
}

// staticBytes returns the bytes of the executable's file from link-time
// address addr to the end of its section.
func (r *Runtime) staticBytes(addr uint64) []byte {
	f, err := r.Binary.Image.ELF()
	if err != nil {
		return nil
	}
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_ALLOC == 0 || addr < s.Addr || addr >= s.Addr+s.Size {
			continue
		}
		_, data, err := r.Binary.Image.Section(s.Name)
		if err != nil || uint64(len(data)) != s.Size {
			return nil
		}
		return data[addr-s.Addr:]
	}
	return nil
}

// moduleData holds the fields of runtime.firstmoduledata the package
// uses, as run-time addresses.
type moduleData struct {
	addr                               uint64
	text, etext, types, etypes, gofunc uint64
	noptrdata, enoptrdata, data, edata uint64
	bss, ebss, noptrbss, enoptrbss     uint64
	rodata                             uint64
}

// findModuleData locates runtime.firstmoduledata: by symbol, else by
// scanning the executable's writable mappings for the pointer to the
// pcHeader that starts it (gobin.FindModuledata).
func (r *Runtime) findModuleData(pcHeader uint64, h *gobin.Header) (*moduleData, error) {
	off := func(field string) int64 {
		if r.Binary.Layout != nil {
			if o, err := r.Binary.Layout.Off("runtime.moduledata", field); err == nil {
				return o
			}
		}
		return moduledataPrefix[field]
	}
	addr, _, ok := r.global("runtime.firstmoduledata")
	if !ok || !gobin.IsModuledata(r.Proc, addr, pcHeader, h) {
		var ranges []gobin.Range
		for _, m := range r.Binary.Image.Mappings {
			if m.Perm&coredump.PermWrite != 0 && m.Size() <= 64<<20 {
				ranges = append(ranges, gobin.Range{Start: m.Start, End: m.Start + m.Size()})
			}
		}
		var err error
		if addr, err = gobin.FindModuledata(r.Proc, ranges, pcHeader, h); err != nil {
			return nil, fmt.Errorf("no symbol, and %w", err)
		}
	}
	md := &moduleData{addr: addr}
	var readErr error
	read := func(field string) uint64 {
		v, err := r.Proc.ReadUint64(addr + uint64(off(field)))
		if err != nil && readErr == nil {
			readErr = fmt.Errorf("moduledata.%s: %w", field, err)
		}
		return v
	}
	md.text, md.etext = read("text"), read("etext")
	md.types, md.etypes, md.rodata, md.gofunc = read("types"), read("etypes"), read("rodata"), read("gofunc")
	md.noptrdata, md.enoptrdata, md.data, md.edata = read("noptrdata"), read("enoptrdata"), read("data"), read("edata")
	md.bss, md.ebss, md.noptrbss, md.enoptrbss = read("bss"), read("ebss"), read("noptrbss"), read("enoptrbss")
	if readErr != nil {
		// A zero bound would pass for a real one.
		return nil, fmt.Errorf("moduledata at %#x: %w", addr, readErr)
	}
	if md.text == 0 || md.etext <= md.text {
		return nil, fmt.Errorf("moduledata at %#x has text %#x-%#x", addr, md.text, md.etext)
	}
	r.md = md
	return md, nil
}

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// readProcessFacts reads the runtime's view of the process as a whole.
func (r *Runtime) readProcessFacts() {
	p := r.Proc
	if a, _, ok := r.global("runtime.buildVersion"); ok {
		v, err := r.readGoString(a)
		switch {
		case err != nil:
		case validGoVersion(v):
			r.BuildVersion = v
		default:
			// The address came from the binary; a binary that is not
			// the program (--force) points it at unrelated bytes.
			r.note("runtime.buildVersion at %#x holds %q, not a Go version: not shown", a, truncateForNote(v))
		}
	}
	if a, _, ok := r.global("runtime.iscgo"); ok {
		var b [1]byte
		if _, err := p.ReadMemory(b[:], a); err == nil {
			r.IsCgo = b[0] != 0
		}
	} else {
		_, _, r.IsCgo = r.Binary.Global("_cgo_init")
		if !r.IsCgo {
			r.IsCgo = r.Binary.Setting("CGO_ENABLED") == "1"
		}
	}
	if a, _, ok := r.global("runtime.argslice"); ok {
		var hdr [16]byte // []string: data pointer, length
		ptr, n := uint64(0), uint64(0)
		if _, err := p.ReadMemory(hdr[:], a); err != nil {
			r.note("command line: runtime.argslice: %v", err) // argv is tried below
		} else {
			ptr, n = le64(hdr[:]), le64(hdr[8:])
		}
		if ptr != 0 && n > 0 && n <= maxArgs {
			for i := uint64(0); i < n; i++ {
				s, err := r.readGoString(ptr + 16*i)
				if err != nil {
					r.note("command line: argument %d: %v", i, err)
					break
				}
				r.Args = append(r.Args, s)
			}
		}
	}
	if len(r.Args) == 0 {
		r.Args = r.argsFromArgv()
	}
	r.Backlog = r.readBacklog()
}

// argsFromArgv reads runtime.argc and runtime.argv, set before argslice.
func (r *Runtime) argsFromArgv() []string {
	ac, _, ok1 := r.global("runtime.argc")
	av, _, ok2 := r.global("runtime.argv")
	if !ok1 || !ok2 {
		return nil
	}
	argc, err := r.Proc.ReadUint32(ac)
	if err != nil || argc == 0 || argc > maxArgs {
		return nil
	}
	argv, err := r.Proc.ReadUint64(av)
	if err != nil || argv == 0 {
		return nil
	}
	var out []string
	for i := uint64(0); i < uint64(argc); i++ {
		sp, err := r.Proc.ReadUint64(argv + 8*i)
		if err != nil || sp == 0 {
			break
		}
		s, _, err := r.Proc.ReadCString(sp, maxArgLen)
		if err != nil {
			break
		}
		out = append(out, s)
	}
	return out
}

// readBacklog returns runtime.printBacklog in the order it was written.
func (r *Runtime) readBacklog() string {
	a, size, ok := r.global("runtime.printBacklog")
	ia, _, ok2 := r.global("runtime.printBacklogIndex")
	if !ok || !ok2 || size == 0 || size > 1<<16 {
		return ""
	}
	buf := make([]byte, size)
	if _, err := r.Proc.ReadMemory(buf, a); err != nil {
		return ""
	}
	idx, err := r.Proc.ReadUint64(ia)
	if err != nil || idx >= size {
		idx = 0
	}
	// The ring holds the newest bytes before idx and the oldest from idx
	// on; unwritten bytes are zero.
	s := append(append([]byte{}, buf[idx:]...), buf[:idx]...)
	s = []byte(strings.TrimLeft(string(s), "\x00"))
	return strings.ToValidUTF8(strings.ReplaceAll(string(s), "\x00", ""), "?")
}

// readGoString reads a Go string header (pointer, length) at addr.
func (r *Runtime) readGoString(addr uint64) (string, error) {
	var b [16]byte
	if _, err := r.Proc.ReadMemory(b[:], addr); err != nil {
		return "", err
	}
	return r.readStringData(le64(b[:]), le64(b[8:]))
}

// readStringData reads the bytes of a string with data pointer ptr and
// length n, refusing absurd lengths.
func (r *Runtime) readStringData(ptr, n uint64) (string, error) {
	if n == 0 {
		return "", nil
	}
	if n > maxStringLen {
		return "", fmt.Errorf("string at %#x claims %d bytes", ptr, n)
	}
	buf := make([]byte, n)
	if _, err := r.Proc.ReadMemory(buf, ptr); err != nil {
		return "", err
	}
	return string(buf), nil
}

// loadStateNames reads the goroutine status and wait reason names from
// the process (runtime.gStatusStrings, runtime.waitReasonStrings), falling
// back to the DWARF constant names and the version tables.
func (r *Runtime) loadStateNames() {
	r.states = map[uint32]string{}
	if names := r.readStringArray("runtime.gStatusStrings", 64); names != nil {
		for i, n := range names {
			if n != "" {
				r.states[uint32(i)] = n
			}
		}
	}
	if len(r.states) == 0 {
		for name, v := range r.Binary.Layout.Consts("runtime._G") {
			s := strings.TrimPrefix(name, "runtime._G")
			if strings.Contains(s, "_") || s == "scan" || s == "" {
				continue // _Gmoribund_unused, _Gscan*, ...
			}
			r.states[uint32(v)] = strings.ToLower(s)
		}
	}
	if len(r.states) == 0 {
		r.states = gStatusFallback(r.Version)
	}
	r.waits = r.readStringArray("runtime.waitReasonStrings", 256)
	if r.waits == nil {
		r.note("runtime.waitReasonStrings unreadable: wait reasons are shown as numbers")
	}
}

// readStringArray reads a global [N]string.
func (r *Runtime) readStringArray(sym string, max uint64) []string {
	a, size, ok := r.global(sym)
	if !ok || size%16 != 0 || size/16 > max {
		return nil
	}
	n := size / 16
	buf := make([]byte, size)
	if _, err := r.Proc.ReadMemory(buf, a); err != nil {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		ptr, l := le64(buf[16*i:]), le64(buf[16*i+8:])
		if l > 4096 {
			return nil
		}
		s, err := r.readStringData(ptr, l)
		if err != nil {
			return nil
		}
		out[i] = s
	}
	return out
}

// StatusName names a goroutine status (without the scan bit), as the
// runtime's traceback header does.
func (r *Runtime) StatusName(status uint32) string {
	if s, ok := r.states[status&^r.off.gScan]; ok {
		return s
	}
	return fmt.Sprintf("status %d", status)
}

// WaitReasonName names a wait reason.
func (r *Runtime) WaitReasonName(w uint8) string {
	if int(w) < len(r.waits) {
		return r.waits[w]
	}
	if w == 0 {
		return ""
	}
	return fmt.Sprintf("wait reason %d", w)
}

// GByAddr returns the goroutine (or g0/gsignal) whose g struct is at addr.
func (r *Runtime) GByAddr(addr uint64) *G { return r.gByAddr[addr] }

// MByAddr returns the M whose m struct is at addr.
func (r *Runtime) MByAddr(addr uint64) *M { return r.mByAddr[addr] }

// Goroutine returns the goroutine with the given id.
func (r *Runtime) Goroutine(id int64) *G {
	for _, g := range r.Gs {
		if g.ID == id {
			return g
		}
	}
	return nil
}

// MByID returns the M with the given id.
func (r *Runtime) MByID(id int64) *M {
	for _, m := range r.Ms {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// HeapTotal is one figure of the heap's size.
type HeapTotal struct {
	Name   string
	Bytes  uint64
	Source string
}

// HeapTotals reads the heap's size as the runtime accounts it: the pages
// of in-use spans (mheap_.pagesInUse), the live heap the collector
// tracks (gcController.heapLive) and the memory limit (GOMEMLIMIT).
func (r *Runtime) HeapTotals() []HeapTotal {
	var out []HeapTotal
	l := r.Binary.Layout
	read := func(sym, typ, field string) (uint64, bool) {
		a, _, ok := r.global(sym)
		if !ok {
			return 0, false
		}
		off, err := l.Off(typ, field)
		if err != nil {
			return 0, false
		}
		v, err := r.Proc.ReadUint64(a + uint64(off))
		return v, err == nil
	}
	page := int64(8192)
	if v, ok := l.Const("runtime._PageSize"); ok {
		page = v
	}
	if v, ok := read("runtime.mheap_", "runtime.mheap", "pagesInUse"); ok {
		out = append(out, HeapTotal{"pages of in-use spans", v * uint64(page), "runtime.mheap_.pagesInUse"})
	}
	if v, ok := read("runtime.gcController", "runtime.gcControllerState", "heapLive"); ok {
		out = append(out, HeapTotal{"live heap tracked by the garbage collector", v, "runtime.gcController.heapLive"})
	}
	if v, ok := read("runtime.gcController", "runtime.gcControllerState", "memoryLimit"); ok && int64(v) > 0 && int64(v) < 1<<62 {
		out = append(out, HeapTotal{"memory limit (GOMEMLIMIT)", v, "runtime.gcController.memoryLimit"})
	}
	return out
}

// reGoVersion is what runtime.buildVersion holds: the toolchain's version
// ("go1.22.12", "go1.23rc1") with optional GOEXPERIMENTs (" X:..."), or a
// development toolchain's "devel go1.N-hash ..." (cmd/dist writes it,
// runtime/extern.go's Version documents both).
var reGoVersion = regexp.MustCompile(`^(go1\.\d+(\.\d+)?((rc|beta)\d+)?|devel [ -~]+)( X:[ -~]+)?$`)

func validGoVersion(v string) bool { return len(v) <= 256 && reGoVersion.MatchString(v) }

// truncateForNote shortens a string read from untrusted memory for a note.
func truncateForNote(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
