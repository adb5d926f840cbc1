package libc

import (
	"bytes"
	"debug/elf"
	"fmt"
	"sort"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
)

// errnoFuncs are the names C libraries give the function that returns
// the calling thread's errno address: glibc and musl __errno_location,
// musl's internal alias ___errno_location, and the BSD/newlib/bionic
// spelling __errno.
var errnoFuncs = []string{"__errno_location", "___errno_location", "__errno"}

// ErrnoKind says how an implementation finds the errno slot.
type ErrnoKind uint8

const (
	// KindTPOffGOT: initial-exec TLS, a TPOFF the loader stored in a GOT
	// slot added to the thread pointer (glibc's libc.so).
	KindTPOffGOT ErrnoKind = iota + 1
	// KindTPConst: the thread pointer (or the TCB's self pointer) plus a
	// constant: musl's errno_val field of struct pthread, or local-exec
	// TLS of a static executable.
	KindTPConst
	// KindTLSGetAddr: general-dynamic TLS through __tls_get_addr.
	KindTLSGetAddr
	// KindFallback: not computed from code; from the C library's TLS
	// symbol and its static TLS offset.
	KindFallback
)

var errnoKindNames = [...]string{KindTPOffGOT: "tpoff-from-got", KindTPConst: "tp-plus-constant",
	KindTLSGetAddr: "tls-get-addr", KindFallback: "tls-symbol-fallback"}

func (k ErrnoKind) String() string {
	if int(k) < len(errnoKindNames) && errnoKindNames[k] != "" {
		return errnoKindNames[k]
	}
	return fmt.Sprintf("ErrnoKind(%d)", uint8(k))
}

// MarshalText writes the kind by name.
func (k ErrnoKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// ErrnoImpl is one implementation of __errno_location in the process.
type ErrnoImpl struct {
	Image *coredump.Image
	Names []string // the symbols at its address
	Addr  uint64   // run-time address
	// Hidden is set when only code of the same image can call it: a
	// local or hidden symbol, named only by .symtab.
	Hidden bool
	// Found says where it was found: ".dynsym", ".symtab", "code pattern"
	// (an image without symbols), "fallback".
	Found string
	Kind  ErrnoKind
	// Shape is the C library whose code it looks like: musl for the
	// thread pointer plus errno_val's offset, glibc for a TPOFF from the
	// GOT (None when neither).
	Shape Flavor
	// Offset is the errno slot's offset from the thread pointer, as the
	// code computes it in a thread with an intact TCB.
	Offset      int64
	OffsetKnown bool
	// Code is the instruction sequence followed, in the first thread.
	Code []EmuStep
	// Source describes the computation in one line.
	Source string
	// CrossCheck reports what the loader's own records say about the
	// slot (TPOFF64 relocation, link_map l_tls_offset).
	CrossCheck string
	// Err says why the code could not be followed.
	Err error
	// TLSModule and TLSOffset locate a general-dynamic slot: offset
	// TLSOffset of module TLSModule's block, through each thread's dtv.
	TLSModule, TLSOffset uint64
}

// Where says where the implementation puts errno, relative to the thread:
// "%fs-0x88", or "module 3's TLS block + 0x0" for general-dynamic TLS.
func (e *ErrnoImpl) Where(tpName string) string {
	if e.Kind == KindTLSGetAddr {
		return fmt.Sprintf("module %d's TLS block %s (via __tls_get_addr and the dtv)", e.TLSModule, plusHex(int64(e.TLSOffset)))
	}
	if !e.OffsetKnown {
		return "an unknown place"
	}
	return tpName + signedOffset(e.Offset)
}

func signedOffset(off int64) string {
	if off < 0 {
		return fmt.Sprintf("-%#x", -off)
	}
	return fmt.Sprintf("+%#x", off)
}

// Name is the first symbol name (or a description for a pattern match).
func (e *ErrnoImpl) Name() string {
	if len(e.Names) > 0 {
		return e.Names[0]
	}
	return fmt.Sprintf("code at %#x", e.Addr)
}

func (e *ErrnoImpl) String() string {
	return fmt.Sprintf("%s`%s", e.Image.Name(), e.Name())
}

// ErrnoBinding says which implementation an image's code calls.
type ErrnoBinding struct {
	Image *coredump.Image
	// Slot is the GOT or PLT slot the image calls through (0 when it
	// calls its own copy directly).
	Slot   uint64
	Target uint64
	Impl   *ErrnoImpl // nil when Target is no known implementation
	// Resolved is false for a lazy PLT slot the loader has not bound yet.
	Resolved bool
	How      string
}

// ErrnoValue is one thread's errno slot as one implementation computes it.
type ErrnoValue struct {
	Impl  *ErrnoImpl
	Addr  uint64
	Value Errno
	Err   error // the slot could not be computed or read
	// Source says how the address was computed in this thread.
	Source string
	Steps  []EmuStep
	// Overlaps names the field of the C library's TCB header the slot
	// lies in ("pointer_guard"): its value is that field's bytes.
	Overlaps string
}

// findErrnoImpls lists every __errno_location in every image and follows
// its code in the first thread.
func (r *Runtime) findErrnoImpls() {
	for _, ei := range r.readableImages() {
		im := ei.im
		byAddr := map[uint64]*ErrnoImpl{}
		add := func(s elf.Symbol, table string) {
			if s.Section == elf.SHN_UNDEF || s.Value == 0 || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
				return
			}
			ok := false
			for _, n := range errnoFuncs {
				ok = ok || s.Name == n
			}
			if !ok {
				return
			}
			addr := s.Value + im.Bias
			e := byAddr[addr]
			if e == nil {
				e = &ErrnoImpl{Image: im, Addr: addr, Found: table, Hidden: true}
				byAddr[addr] = e
				r.Errno = append(r.Errno, e)
			}
			if !contains(e.Names, s.Name) {
				e.Names = append(e.Names, s.Name)
			}
			if !hidden(s) {
				e.Hidden = false
			}
			if table == ".dynsym" {
				e.Found = table
			}
		}
		for _, s := range ei.dynsym {
			add(s, ".dynsym")
		}
		for _, s := range ei.symtab {
			add(s, ".symtab")
		}
		if lib := r.Lib(im); ei.symtab == nil && len(byAddr) == 0 && (lib == nil || lib.Embedded) {
			r.scanErrnoPatterns(im, ei)
		}
	}
	sort.SliceStable(r.Errno, func(i, j int) bool {
		a, b := r.Errno[i], r.Errno[j]
		if a.Image != b.Image {
			return r.imageIndex(a.Image) < r.imageIndex(b.Image)
		}
		return a.Addr < b.Addr
	})
	for _, e := range r.Errno {
		r.analyzeImpl(e)
	}
	if r.primaryImpl() == nil {
		if fb := r.fallbackImpl(); fb != nil {
			r.Errno = append(r.Errno, fb)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *Runtime) imageIndex(im *coredump.Image) int {
	for i, x := range r.Proc.Images {
		if x == im {
			return i
		}
	}
	return len(r.Proc.Images)
}

// muslErrnoShape is musl's __errno_location on x86-64 (mov %fs:0,%rax;
// add $errno_val,%rax; ret), with the three offsets errno_val has had.
var muslErrnoShape = []byte{0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0x48, 0x83, 0xc0}

const maxScanBytes = 256 << 20

// scanErrnoPatterns finds musl's __errno_location by its code in an image
// without a symbol table (a stripped static binary, a stripped shared
// object carrying libc.a).
func (r *Runtime) scanErrnoPatterns(im *coredump.Image, ei *elfInfo) {
	if r.Arch != coredump.ArchAMD64 {
		return
	}
	scanned := 0
	for _, ph := range ei.f.Progs {
		if ph.Type != elf.PT_LOAD || ph.Flags&elf.PF_X == 0 || ph.Filesz == 0 {
			continue
		}
		if scanned += int(ph.Filesz); scanned > maxScanBytes {
			r.note("%s: executable segments larger than %d bytes were not searched for __errno_location", im.Name(), maxScanBytes)
			return
		}
		code := make([]byte, ph.Filesz)
		if _, err := ph.ReadAt(code, 0); err != nil {
			continue
		}
		for i := 0; ; {
			j := bytes.Index(code[i:], muslErrnoShape)
			if j < 0 {
				break
			}
			k := i + j
			i = k + 1
			if k+len(muslErrnoShape)+2 > len(code) || code[k+len(muslErrnoShape)+1] != 0xc3 {
				continue
			}
			switch code[k+len(muslErrnoShape)] {
			case 0x34, 0x3c, 0x44:
			default:
				continue
			}
			r.Errno = append(r.Errno, &ErrnoImpl{Image: im, Addr: ph.Vaddr + uint64(k) + im.Bias,
				Found: "code pattern", Hidden: true})
		}
	}
}

// analyzeImpl follows an implementation's code in the first thread whose
// TCB lets it return, and classifies it.
func (r *Runtime) analyzeImpl(e *ErrnoImpl) {
	var res *emuResult
	var err error
	var tp uint64
	for _, t := range r.Proc.Threads {
		tp = t.TP()
		if tp == 0 {
			continue
		}
		res, err = r.emulate(e.Addr, tp)
		if err == nil {
			break
		}
	}
	if res == nil {
		if err == nil {
			err = fmt.Errorf("no thread has a thread pointer")
		}
		e.Err = err
		return
	}
	e.Code = res.steps
	e.Offset, e.OffsetKnown = int64(res.value-tp), true
	lib := r.Lib(e.Image)
	switch {
	case res.tlsGetAdr:
		e.Kind = KindTLSGetAddr
		e.TLSModule, e.TLSOffset = res.tlsModule, res.tlsOffset
	case res.got != 0:
		e.Kind = KindTPOffGOT
	default:
		e.Kind = KindTPConst
	}
	switch {
	case e.Kind == KindTPConst && r.Arch == coredump.ArchAMD64 && e.Offset > 0 && e.Offset < 0x100:
		// The thread pointer is musl's struct pthread; errno_val is one
		// of its first fields. glibc's TCB has no errno there.
		e.Shape = Musl
	case e.Kind == KindTPConst && r.Arch == coredump.ArchARM64 && e.Offset < 0 && e.Offset > -0x200:
		e.Shape = Musl // musl's struct pthread ends at tpidr_el0 on arm64
	case e.Kind == KindTPOffGOT && (strings.Contains(res.gotNote, "TPOFF") || strings.Contains(res.gotNote, "TLS_TPREL")):
		e.Shape = Glibc
	case lib != nil:
		e.Shape = lib.Flavor
	}
	e.Source = r.describeComputation(e, res, tp)
	r.crossCheck(e)
	if e.Shape == Musl {
		r.chooseMuslLayout(e.Offset, true)
	}
}

func (r *Runtime) emulate(pc, tp uint64) (*emuResult, error) {
	if r.Arch == coredump.ArchARM64 {
		return r.emulateARM64(pc, tp)
	}
	return r.emulateAMD64(pc, tp)
}

// TPName names the thread pointer register in assembly: %fs, tpidr_el0.
func (r *Runtime) TPName() string {
	if r.Arch == coredump.ArchARM64 {
		return "tpidr_el0"
	}
	return "%fs"
}

// describeComputation writes the slot computation in one line.
func (r *Runtime) describeComputation(e *ErrnoImpl, res *emuResult, tp uint64) string {
	where := fmt.Sprintf("%s in %s", e.Name(), e.Image.Name())
	switch e.Kind {
	case KindTPOffGOT:
		return fmt.Sprintf("%s: thread pointer + TPOFF %s read from %s", where, signedHex(uint64(e.Offset)), res.gotNote)
	case KindTLSGetAddr:
		return fmt.Sprintf("%s: __tls_get_addr(module %d, offset %#x) through the thread's dtv", where, res.tlsModule, res.tlsOffset)
	}
	base := "thread pointer"
	if res.selfRead {
		base = fmt.Sprintf("TCB self pointer (%s:0)", r.TPName())
	}
	return fmt.Sprintf("%s: %s %s", where, base, plusHex(e.Offset))
}

// plusHex writes an offset with its sign: "+0x34", "-0x88".
func plusHex(off int64) string {
	if off < 0 {
		return fmt.Sprintf("- %#x", -off)
	}
	return fmt.Sprintf("+ %#x", off)
}

// crossCheck compares a glibc-shaped implementation's slot with the
// loader's records of the C library's TLS: the R_X86_64_TPOFF64
// relocation of its errno symbol and link_map's l_tls_offset.
func (r *Runtime) crossCheck(e *ErrnoImpl) {
	l := r.glibc
	if l == nil || e.Shape != Glibc || l.errnoSymOffset < 0 || l.lib.Image != e.Image {
		return
	}
	var checks []string
	if m := r.Module(e.Image); m != nil && m.HasTLS {
		off := r.tlsOffset(m, l.errnoSymOffset)
		verdict := "agrees"
		if off != e.Offset {
			verdict = "DISAGREES"
		}
		checks = append(checks, fmt.Sprintf("link_map l_tls_offset %#x + errno %#x gives %s (%s)", m.TLSOffset, l.errnoSymOffset, signedHex(uint64(off)), verdict))
	}
	e.CrossCheck = strings.Join(checks, "; ")
}

// fallbackImpl computes glibc's errno slot without code: from the TLS
// symbol errno and the static TLS offset the loader gave libc.
func (r *Runtime) fallbackImpl() *ErrnoImpl {
	l := r.glibc
	if l == nil || l.errnoSymOffset < 0 {
		return nil
	}
	im := l.lib.Image
	e := &ErrnoImpl{Image: im, Names: []string{"errno"}, Found: "fallback", Kind: KindFallback, Shape: Glibc}
	// The TPOFF64 relocation of errno (by symbol, or symbol 0 with the
	// symbol's value as addend) names a GOT slot the loader filled.
	if rs, err := r.elf(im).readRelocs(); err == nil {
		for _, rel := range rs {
			if !isTPOff(rel.Type, r.Arch) {
				continue
			}
			if (rel.Sym != nil && rel.Sym.Name == "errno") || (rel.Sym == nil && rel.Addend == l.errnoSymOffset) {
				slot := rel.Off + im.Bias
				v, err := r.Proc.ReadUint64(slot)
				if err != nil {
					continue
				}
				e.Offset, e.OffsetKnown = int64(v), true
				e.Source = fmt.Sprintf("%s TLS symbol errno: GOT slot %#x (%s) = %s", im.Name(), slot, r.describeSlot(slot), signedHex(v))
				return e
			}
		}
	}
	if m := r.Module(im); m != nil && m.HasTLS {
		e.Offset, e.OffsetKnown = r.tlsOffset(m, l.errnoSymOffset), true
		e.Source = fmt.Sprintf("%s TLS symbol errno (%#x) in its static TLS block at link_map l_tls_offset %#x", im.Name(), l.errnoSymOffset, m.TLSOffset)
		return e
	}
	return nil
}

// findBindings reads which implementation each image calls: its resolved
// GOT/PLT slot for __errno_location, or its own copy.
func (r *Runtime) findBindings() {
	for _, ei := range r.readableImages() {
		im := ei.im
		rs, _ := ei.readRelocs()
		bound := false
		for _, rel := range rs {
			if rel.Sym == nil || !isSymbolSlot(rel.Type, r.Arch) || !contains(errnoFuncs, rel.Sym.Name) {
				continue
			}
			slot := rel.Off + im.Bias
			b := &ErrnoBinding{Image: im, Slot: slot}
			v, err := r.Proc.ReadUint64(slot)
			if err != nil {
				b.How = fmt.Sprintf("%s slot %#x for %s: %v", relocName(rel.Type, r.Arch == coredump.ArchARM64), slot, rel.Sym.Name, err)
				r.Bindings = append(r.Bindings, b)
				bound = true
				continue
			}
			b.Target, b.Resolved = v, true
			b.Impl = r.implAt(v)
			b.How = fmt.Sprintf("%s slot %#x for %s = %#x", relocName(rel.Type, r.Arch == coredump.ArchARM64), slot, rel.Sym.Name, v)
			if b.Impl == nil && im.Contains(v) {
				// A lazy PLT slot still points back into the image's own
				// PLT: the first call has not happened yet.
				b.Resolved = false
				b.How += " (not bound yet: lazy binding, the function was never called)"
			}
			r.Bindings = append(r.Bindings, b)
			bound = true
		}
		if bound {
			continue
		}
		// An image that carries its own copy calls it directly.
		for _, e := range r.Errno {
			if e.Image == im && e.Kind != KindFallback {
				how := "its own copy, called directly"
				if e.Hidden {
					how = "its own hidden copy (" + e.Found + "), called directly"
				}
				if im.IsExe && r.Linkage == Static {
					how = "statically linked (" + e.Found + ")"
				}
				r.Bindings = append(r.Bindings, &ErrnoBinding{Image: im, Target: e.Addr, Impl: e, Resolved: true, How: how})
				break
			}
		}
	}
}

func (r *Runtime) implAt(addr uint64) *ErrnoImpl {
	for _, e := range r.Errno {
		if e.Addr == addr && e.Kind != KindFallback {
			return e
		}
	}
	return nil
}

// Binding returns how an image reaches __errno_location, or nil.
func (r *Runtime) Binding(im *coredump.Image) *ErrnoBinding {
	for _, b := range r.Bindings {
		if b.Image == im {
			return b
		}
	}
	return nil
}

// primaryImpl is the implementation whose slot is the thread's errno: the
// one the executable is bound to, else the C library's exported one.
func (r *Runtime) primaryImpl() *ErrnoImpl {
	if r.Proc.Exe != nil {
		if b := r.Binding(r.Proc.Exe); b != nil && b.Impl != nil && b.Impl.OffsetKnown {
			return b.Impl
		}
	}
	for _, lib := range r.Libs {
		for _, e := range r.Errno {
			if e.Image == lib.Image && !e.Hidden && e.OffsetKnown {
				return e
			}
		}
	}
	for _, e := range r.Errno {
		if e.OffsetKnown {
			return e
		}
	}
	return nil
}

// addEmbeddedLibs records a C library copy found only through its
// __errno_location: musl's code in an image that is no musl library
// (a shared object built with musl's libc.a, a stripped static binary).
func (r *Runtime) addEmbeddedLibs() {
	for _, e := range r.Errno {
		if e.Shape != Musl || r.Lib(e.Image) != nil {
			continue
		}
		lib := &Lib{Flavor: Musl, Image: e.Image, Embedded: true,
			Evidence: fmt.Sprintf("its %s (%s) has musl's shape: %s", e.Name(), e.Found, e.Source)}
		r.Libs = append(r.Libs, lib)
		if len(r.Libs) == 1 {
			r.Flavor = Musl
			if r.musl == nil {
				r.musl = &muslLayout{}
				r.chooseMuslLayout(e.Offset, true)
			}
		}
	}
	if r.Flavor == Musl && r.musl != nil && r.musl.variant != nil && r.Version == "" && len(r.Libs) > 0 && r.Libs[0].Flavor == Musl {
		r.Libs[0].Version = r.musl.variant.versions
		r.Libs[0].VersionSource = "struct pthread layout (" + r.musl.source + ")"
		r.Version = r.Libs[0].Version
	}
}
