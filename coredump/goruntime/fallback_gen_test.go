package goruntime

// The generator of the fallback_go1*.go tables and the checks that keep
// them true. It lives in a test file so that it can read the package's
// internals and run the real readers; fallback_test.go drives it:
//
//	go test ./coredump/goruntime -run TestGenerateFallback -update-fallback
//
// rebuilds a fixture with every supported toolchain, runs the full report
// on its core while recording every name asked of Layout, and writes one
// table per Go minor version answering exactly those names from that
// binary's DWARF.

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"go/format"
	"sort"
	"strings"
	"sync"
)

// Request is one name asked of a Layout.
type Request struct {
	Kind string // "struct", "field", "const" or "consts" (a prefix)
	Type string // the struct type, the constant, or the prefix
	Path string // the field path, for "field"
}

func (r Request) String() string {
	if r.Path != "" {
		return r.Kind + " " + r.Type + "." + r.Path
	}
	return r.Kind + " " + r.Type
}

var recordMu sync.Mutex

// RecordRequests runs f and returns every name asked of any Layout
// meanwhile, sorted and without duplicates.
func RecordRequests(f func()) []Request {
	recordMu.Lock()
	defer recordMu.Unlock()
	var mu sync.Mutex
	seen := map[Request]bool{}
	layoutRequests = func(kind, typ, path string) {
		mu.Lock()
		seen[Request{kind, typ, path}] = true
		mu.Unlock()
	}
	defer func() { layoutRequests = nil }()
	f()
	return sortedRequests(seen)
}

func sortedRequests(seen map[Request]bool) []Request {
	out := make([]Request, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Path < b.Path
	})
	return out
}

// MergeRequests unions request lists.
func MergeRequests(lists ...[]Request) []Request {
	seen := map[Request]bool{}
	for _, l := range lists {
		for _, r := range l {
			seen[r] = true
		}
	}
	return sortedRequests(seen)
}

// BootstrapRequests are names the runtime readers on other branches are
// known to ask for (offsets.go, heap.go, the memory layer), so that tables
// generated before those readers reach this branch already cover them.
// The recording during the report run adds whatever else is asked.
func BootstrapRequests() []Request {
	var out []Request
	fields := func(typ string, paths ...string) {
		out = append(out, Request{"struct", typ, ""})
		for _, p := range paths {
			out = append(out, Request{"field", typ, p})
		}
	}
	fields("runtime.g", "stack.lo", "stack.hi", "_panic", "_defer", "m", "sched.sp", "sched.pc", "sched.bp",
		"sched.lr", "sched.g", "syscallsp", "syscallpc", "atomicstatus", "goid", "waitsince", "waitreason",
		"lockedm", "sig", "sigcode0", "sigcode1", "sigpc", "parentGoid", "gopc", "startpc", "labels",
		"waiting", "stktopsp", "stackguard0", "param", "preempt", "ancestors", "timer", "selectDone",
		"syncGroup", "bubble", "racectx", "coroarg", "trackingSeq", "inMarkAssist")
	fields("runtime.m", "g0", "procid", "gsignal", "curg", "caughtsig", "id", "throwing", "dying", "incgo",
		"isextra", "isExtraInC", "ncgo", "alllink", "lockedg", "p", "nextp", "oldp", "spinning", "blocked",
		"mallocing", "locks", "tls", "preemptoff", "libcallsp", "libcallpc", "vdsoSP", "vdsoPC", "morebuf.sp",
		"morebuf.pc", "sigmask", "goSigStack.stack.lo", "goSigStack.stack.hi", "cgoCallers", "cgoCallersUse",
		"mstartfn", "freeWait", "schedlink", "lockedExt", "lockedInt", "waitunlockf", "createstack", "printlock",
		"ncgocall", "park", "syscalltick")
	fields("runtime._panic", "arg", "link", "recovered", "goexit", "repanicked", "aborted", "argp", "pc", "sp",
		"startPC", "startSP", "gopanicFP", "retpc", "deferreturn")
	fields("runtime._defer", "fn", "link", "pc", "sp", "heap", "rangefunc", "started", "openDefer")
	fields("runtime.p", "id", "status", "m", "runqhead", "runqtail", "runq", "runnext", "mcache", "link")
	fields("runtime.moduledata", "pcHeader", "funcnametab", "cutab", "filetab", "pctab", "pclntable", "ftab",
		"findfunctab", "minpc", "maxpc", "text", "etext", "noptrdata", "enoptrdata", "data", "edata", "bss",
		"ebss", "noptrbss", "enoptrbss", "covctrs", "ecovctrs", "end", "gcdata", "gcbss", "types", "etypes",
		"rodata", "gofunc", "textsectmap", "typelinks", "itablinks", "modulename", "next")
	fields("runtime.schedt", "lastpoll", "pollUntil", "lock", "midle", "nmidle", "nmspinning", "npidle",
		"nmsys", "maxmcount", "runq", "runqsize", "gcwaiting", "stopwait", "sysmonwait", "pidle", "goidgen")
	fields("runtime.mheap", "arenas", "sweepgen", "allspans", "pages", "central", "curArena", "arenaHints")
	fields("runtime.heapArena", "spans", "pageInUse", "pageMarks", "pageSpecials", "zeroedBase", "bitmap")
	fields("runtime.mspan", "startAddr", "npages", "freeindex", "nelems", "allocBits", "gcmarkBits", "sweepgen",
		"spanclass", "state", "elemsize", "limit", "largeType", "divMul", "allocCount", "next", "prev", "list",
		"manualFreeList", "freeIndexForScan", "allocCache", "needzero", "isUserArenaChunk", "specials")
	fields("runtime.stack", "lo", "hi")
	fields("runtime.gobuf", "sp", "pc", "g", "ctxt", "lr", "bp", "ret")
	fields("runtime.sudog", "g", "next", "prev", "elem", "c", "isSelect", "waitlink")
	fields("runtime.hchan", "qcount", "dataqsiz", "buf", "elemsize", "closed", "elemtype", "recvq", "sendq", "lock")
	fields("runtime.eface", "_type", "data")
	fields("runtime.iface", "tab", "data")
	fields("runtime.itab", "inter", "_type", "Type", "Inter", "hash", "fun", "Fun")
	fields("runtime.funcval", "fn")
	fields("runtime.boundsError", "x", "y", "signed", "code")
	fields("runtime.plainError")
	fields("runtime.errorString")
	fields("runtime.TypeAssertionError", "_interface", "concrete", "asserted", "missingMethod")
	fields("runtime._type", "str", "tflag", "size", "kind", "hash", "ptrdata")
	fields("internal/abi.Type", "Str", "TFlag", "Size_", "Kind_", "Hash", "PtrBytes")
	fields("runtime.mcache", "alloc", "tiny")
	fields("runtime.sigctxt", "info", "ctxt")
	fields("runtime.siginfo", "si_signo", "si_code", "si_errno", "si_addr")
	fields("runtime.waitq", "first", "last")
	fields("runtime.mutex", "key")
	fields("sync.Mutex", "state", "sema", "mu")
	fields("internal/sync.Mutex", "state", "sema")
	fields("runtime.rwmutex", "rLock", "wLock")
	for _, c := range []string{
		"runtime._Gscan", "runtime._Gidle", "runtime._Grunnable", "runtime._Grunning", "runtime._Gsyscall",
		"runtime._Gwaiting", "runtime._Gdead", "runtime._Gcopystack", "runtime._Gpreempted", "runtime._Gleaked",
		"runtime._Gdeadextra", "runtime._Gmoribund_unused", "runtime._Genqueue_unused",
		"runtime.throwTypeNone", "runtime.throwTypeUser", "runtime.throwTypeRuntime",
		"internal/abi.TFlagExtraStar", "runtime.minSizeForMallocHeader", "runtime.arenaBaseOffsetUintptr",
		"runtime.arenaBaseOffset", "runtime.logHeapArenaBytes", "runtime.heapArenaBytes", "runtime.arenaL1Bits",
		"runtime.arenaL2Bits", "runtime.pageSize", "runtime._PageSize", "runtime.pagesPerArena",
		"runtime.mSpanDead", "runtime.mSpanInUse", "runtime.mSpanManual", "runtime._MaxSmallSize",
		"runtime.maxSmallSize", "runtime._NumSizeClasses", "runtime.tinySize", "runtime.mallocHeaderSize",
		"runtime._Pidle", "runtime._Prunning", "runtime._Psyscall", "runtime._Pgcstop", "runtime._Pdead",
		"runtime.fixedStack", "runtime._StackGuard", "runtime.stackGuard", "runtime._StackSystem",
		"runtime.tracebackInnerFrames", "runtime.tracebackOuterFrames",
	} {
		out = append(out, Request{"const", c, ""})
	}
	for _, p := range []string{"runtime._G", "runtime.waitReason", "runtime._P", "runtime.mSpan",
		"internal/abi.TFlag", "internal/abi.Kind", "runtime.kind", "runtime.throwType"} {
		out = append(out, Request{"consts", p, ""})
	}
	return MergeRequests(out)
}

// GenerateFallback answers reqs from the DWARF of the Go binary bin and
// returns the toolchain that built it and the Go source of its table.
func GenerateFallback(bin string, reqs []Request) (toolchain string, src []byte, err error) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "", nil, err
	}
	v, err := ParseGoVersion(bi.GoVersion)
	if err != nil {
		return "", nil, err
	}
	f, err := elf.Open(bin)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	l, err := newLayoutFromDWARF(f, v)
	if err != nil {
		return "", nil, err
	}
	structs := map[string]*genNode{}
	consts := map[string]int64{}
	for _, r := range reqs {
		switch r.Kind {
		case "struct", "field":
			s, err := l.Struct(r.Type)
			if err != nil {
				continue // this release has no such type
			}
			root := structs[r.Type]
			if root == nil {
				root = &genNode{size: s.Size, typ: r.Type}
				structs[r.Type] = root
			}
			if r.Kind == "field" {
				addPath(root, s, r.Path)
			}
		case "const":
			if c, ok := l.Const(r.Type); ok {
				consts[r.Type] = c
			}
		case "consts":
			for k, c := range l.Consts(r.Type) {
				consts[k] = c
			}
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by go test ./coredump/goruntime -run TestGenerateFallback -update-fallback; DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "package goruntime\n\n")
	fmt.Fprintf(&b, "// The runtime layout of Go 1.%d (every patch release), from the DWARF of a\n// binary built with %s, for binaries without DWARF.\n", v.Minor, bi.GoVersion)
	fmt.Fprintf(&b, "func init() {\n\tregisterGenerated(%q, map[string]*Struct{\n", bi.GoVersion)
	for _, name := range sortedKeys(structs) {
		n := structs[name]
		fmt.Fprintf(&b, "%q: fbStruct(%q, %d,\n", name, name, n.size)
		writeFields(&b, n)
		fmt.Fprintf(&b, "),\n")
	}
	fmt.Fprintf(&b, "}, map[string]int64{\n")
	for _, name := range sortedKeys(consts) {
		fmt.Fprintf(&b, "%q: %d,\n", name, consts[name])
	}
	fmt.Fprintf(&b, "})\n}\n")
	src, err = format.Source(b.Bytes())
	if err != nil {
		return "", nil, fmt.Errorf("formatting the table: %v\n%s", err, b.Bytes())
	}
	return bi.GoVersion, src, nil
}

// genNode is a struct field (or a top-level struct) with the sub-fields
// asked for; offsets are relative to the enclosing struct.
type genNode struct {
	offset, size int64
	typ          string
	fields       map[string]*genNode
}

// addPath adds the fields along path, if the struct has them all.
func addPath(root *genNode, s *Struct, path string) {
	parts := strings.Split(path, ".")
	var prev int64
	var fs []Field
	for i := range parts {
		f, err := s.Field(strings.Join(parts[:i+1], "."))
		if err != nil {
			return
		}
		fs = append(fs, f)
	}
	cur := root
	for i, f := range fs {
		if cur.fields == nil {
			cur.fields = map[string]*genNode{}
		}
		n := cur.fields[parts[i]]
		if n == nil {
			n = &genNode{offset: f.Offset - prev, size: f.Size, typ: f.Type}
			cur.fields[parts[i]] = n
		}
		prev = f.Offset
		cur = n
	}
}

func writeFields(b *bytes.Buffer, n *genNode) {
	for _, name := range sortedKeys(n.fields) {
		f := n.fields[name]
		fmt.Fprintf(b, "fbF(%q, %d, %d, %q", name, f.offset, f.size, f.typ)
		if len(f.fields) > 0 {
			fmt.Fprintf(b, ",\n")
			writeFields(b, f)
		}
		fmt.Fprintf(b, "),\n")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CheckFallback compares the fallback table for bin's Go version with the
// DWARF of bin: every struct size, field offset, size and type name and
// every constant must agree. It returns the disagreements.
func CheckFallback(bin string) (toolchain string, problems []string, err error) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "", nil, err
	}
	v, err := ParseGoVersion(bi.GoVersion)
	if err != nil {
		return "", nil, err
	}
	t, err := fallbackFor(v)
	if err != nil {
		return "", nil, err
	}
	f, err := elf.Open(bin)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	l, err := newLayoutFromDWARF(f, v)
	if err != nil {
		return "", nil, err
	}
	fb := &Layout{Version: v, tables: t, structs: map[string]*Struct{}}
	for _, name := range sortedKeys(t.Structs) {
		s, err := l.Struct(name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: in the table, not in DWARF (%v)", name, err))
			continue
		}
		ts := t.Structs[name]
		if ts.Size != s.Size {
			problems = append(problems, fmt.Sprintf("%s: size %d in the table, %d in DWARF", name, ts.Size, s.Size))
		}
		for _, path := range tablePaths(ts) {
			want, err := s.Field(path)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s.%s: in the table, not in DWARF", name, path))
				continue
			}
			got, err := fb.Off(name, path)
			tf, _ := ts.Field(path)
			if err != nil || got != want.Offset || tf.Size != want.Size || tf.Type != want.Type {
				problems = append(problems, fmt.Sprintf("%s.%s: table offset %d size %d type %s, DWARF offset %d size %d type %s (%v)",
					name, path, got, tf.Size, tf.Type, want.Offset, want.Size, want.Type, err))
			}
		}
	}
	for _, name := range sortedKeys(t.consts) {
		if c, ok := l.Const(name); !ok || c != t.consts[name] {
			problems = append(problems, fmt.Sprintf("constant %s: %d in the table, %d (%v) in DWARF", name, t.consts[name], c, ok))
		}
	}
	return bi.GoVersion, problems, nil
}

// tablePaths lists every field path of a table struct, nested ones
// included.
func tablePaths(s *Struct) []string {
	var out []string
	var walk func(prefix string, fs []Field)
	walk = func(prefix string, fs []Field) {
		for _, f := range fs {
			p := prefix + f.Name
			out = append(out, p)
			if f.sub != nil {
				walk(p+".", structFromDWARF(f.Type, f.sub).Fields)
			}
		}
	}
	walk("", s.Fields)
	return out
}

// FallbackAnswers checks that the fallback table for version v answers
// every request in reqs as the DWARF of bin does: a name DWARF has must be
// in the table with the same value; a name DWARF lacks may be absent.
func FallbackAnswers(bin string, reqs []Request) (problems []string, err error) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	v, err := ParseGoVersion(bi.GoVersion)
	if err != nil {
		return nil, err
	}
	t, err := fallbackFor(v)
	if err != nil {
		return nil, err
	}
	f, err := elf.Open(bin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l, err := newLayoutFromDWARF(f, v)
	if err != nil {
		return nil, err
	}
	fb := &Layout{Version: v, tables: t, structs: map[string]*Struct{}}
	for _, r := range reqs {
		switch r.Kind {
		case "struct":
			s, err := l.Struct(r.Type)
			if err != nil {
				continue
			}
			ts, err := fb.Struct(r.Type)
			if err != nil || ts.Size != s.Size {
				problems = append(problems, fmt.Sprintf("%v: not in the table (or another size)", r))
			}
		case "field":
			want, err := l.Off(r.Type, r.Path)
			if err != nil {
				continue
			}
			if got, err := fb.Off(r.Type, r.Path); err != nil || got != want {
				problems = append(problems, fmt.Sprintf("%v: table %d (%v), DWARF %d", r, got, err, want))
			}
		case "const":
			want, ok := l.Const(r.Type)
			if !ok {
				continue
			}
			if got, ok := fb.Const(r.Type); !ok || got != want {
				problems = append(problems, fmt.Sprintf("%v: table %d (%v), DWARF %d", r, got, ok, want))
			}
		case "consts":
			want, got := l.Consts(r.Type), fb.Consts(r.Type)
			for k, c := range want {
				if g, ok := got[k]; !ok || g != c {
					problems = append(problems, fmt.Sprintf("%v: %s table %d (%v), DWARF %d", r, k, g, ok, c))
				}
			}
		}
	}
	return problems, nil
}
