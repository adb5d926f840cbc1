package libc

import (
	"encoding/binary"
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
)

// glibcLayout holds the offsets of glibc's thread and loader structures.
// glibc exports them for libthread_db as GLIBC_PRIVATE descriptors
// _thread_db_<struct>_<field> = {size in bits, count, offset} (nptl_db/
// structs.def), so they are right for whichever build is mapped.
type glibcLayout struct {
	lib            *Lib
	sizeofPthread  int64
	tid            int64 // struct pthread.tid
	dtv            int64 // struct pthread.header.dtv (tcbhead_t.dtv)
	list           int64 // struct pthread.list
	startRoutine   int64
	stackBlock     int64 // struct pthread.stackblock; -1 unknown
	linkMapTLSOff  int64 // struct link_map.l_tls_offset; -1 unknown
	linkMapTLSMod  int64 // struct link_map.l_tls_modid; -1 unknown
	descriptors    bool  // read from the descriptors, not the fallback
	source         string
	stackUsed      int64 // _rtld_global._dl_stack_used; -1 unknown
	stackUser      int64 // _rtld_global._dl_stack_user; -1 unknown
	headerSelf     int64 // tcbhead_t.self on x86-64
	stackGuard     int64 // tcbhead_t.stack_guard on x86-64
	pointerGuard   int64 // tcbhead_t.pointer_guard on x86-64
	errnoSymOffset int64 // st_value of the TLS symbol errno; -1 unknown
}

// glibc 2.34–2.39 x86-64 values, used only when the descriptors cannot be
// read (a static executable links no libthread_db data) and checked
// against every thread's tid before use. They are the _thread_db_
// descriptors of Debian 12's libc.so.6 (glibc 2.36, nptl_db/structs.def):
// sizeof_pthread, pthread_tid, pthread_dtvp, pthread_list,
// pthread_start_routine, link_map_l_tls_offset and l_tls_modid.
// stackblock has no descriptor: 0x690 is the offset pthread_getattr_np
// reads struct pthread.stackblock at in that build (nptl/
// pthread_getattr_np.c).
var glibcFallbackAMD64 = glibcLayout{
	sizeofPthread: 2368, tid: 720, dtv: 8, list: 704, startRoutine: 1592,
	stackBlock: 0x690, linkMapTLSOff: 1144, linkMapTLSMod: 1152, stackUsed: -1, stackUser: -1,
	source: "glibc 2.34-2.39 x86-64 layout (no libthread_db descriptors in the image), checked against each thread's tid",
}

// x86-64 tcbhead_t fields are fixed by the ABI: the compiler's stack
// protector reads %fs:0x28, and glibc's pointer mangling %fs:0x30
// (sysdeps/x86_64/nptl/tls.h).
const (
	amd64HeaderSelf   = 0x10
	amd64StackGuard   = 0x28
	amd64PointerGuard = 0x30
)

// readDescriptor reads a _thread_db_ descriptor's offset (fields) or value
// (sizeof descriptors, one u32).
func readDescriptor(ei *elfInfo, name string, field bool) (int64, bool) {
	s, ok := ei.lookup("_thread_db_" + name)
	if !ok {
		return 0, false
	}
	n := 4
	if field {
		n = 12
	}
	if s.Size != 0 && s.Size < uint64(n) {
		return 0, false
	}
	b, err := ei.fileBytes(s.Value, n)
	if err != nil {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint32(b[n-4:])), true
}

// readLayouts finds the offsets of the thread structures of the
// executable's C library.
func (r *Runtime) readLayouts() {
	for _, lib := range r.Libs {
		if lib.Flavor == Glibc && !lib.Compat && r.glibc == nil {
			r.glibc = r.glibcLayoutOf(lib)
		}
	}
	if r.Flavor == Musl {
		r.musl = &muslLayout{}
	}
}

func (r *Runtime) glibcLayoutOf(lib *Lib) *glibcLayout {
	ei := r.elf(lib.Image)
	l := &glibcLayout{lib: lib, stackBlock: -1, linkMapTLSOff: -1, linkMapTLSMod: -1, stackUsed: -1, stackUser: -1, errnoSymOffset: -1}
	if r.Arch == coredump.ArchAMD64 {
		l.headerSelf, l.stackGuard, l.pointerGuard = amd64HeaderSelf, amd64StackGuard, amd64PointerGuard
	} else {
		l.headerSelf, l.stackGuard, l.pointerGuard = -1, -1, -1
	}
	if s, ok := ei.lookup("errno"); ok {
		l.errnoSymOffset = int64(s.Value)
	}
	size, okSize := readDescriptor(ei, "sizeof_pthread", false)
	tid, okTID := readDescriptor(ei, "pthread_tid", true)
	if !okSize || !okTID {
		if r.Arch != coredump.ArchAMD64 {
			r.note("%s exports no libthread_db descriptors; glibc's struct pthread is not read on %s", lib.Image.Name(), r.Arch)
			return nil
		}
		fb := glibcFallbackAMD64
		fb.lib, fb.errnoSymOffset = lib, l.errnoSymOffset
		fb.headerSelf, fb.stackGuard, fb.pointerGuard = l.headerSelf, l.stackGuard, l.pointerGuard
		return &fb
	}
	l.sizeofPthread, l.tid, l.descriptors = size, tid, true
	l.source = "libthread_db descriptors exported by " + lib.Image.Name()
	l.dtv, _ = readDescriptor(ei, "pthread_dtvp", true)
	l.list, _ = readDescriptor(ei, "pthread_list", true)
	l.startRoutine, _ = readDescriptor(ei, "pthread_start_routine", true)
	if v, ok := readDescriptor(ei, "link_map_l_tls_offset", true); ok {
		l.linkMapTLSOff = v
	}
	if v, ok := readDescriptor(ei, "link_map_l_tls_modid", true); ok {
		l.linkMapTLSMod = v
	}
	if v, ok := readDescriptor(ei, "rtld_global__dl_stack_used", true); ok {
		l.stackUsed = v
	}
	if v, ok := readDescriptor(ei, "rtld_global__dl_stack_user", true); ok {
		l.stackUser = v
	}
	// No descriptor names stackblock. In struct pthread (nptl/descr.h) it
	// follows nextevent (8 bytes) and the 16-byte aligned, 32-byte
	// struct _Unwind_Exception exc; every thread's value is checked
	// against its thread pointer before it is shown.
	if ne, ok := readDescriptor(ei, "pthread_nextevent", true); ok {
		l.stackBlock = (ne+8+15)&^15 + 32
	}
	return l
}

// pthreadAddr is the address of a thread's struct pthread: at the thread
// pointer on x86-64 (TLS variant II), just below it on arm64 (variant I,
// TLS_PRE_TCB_SIZE = sizeof(struct pthread)).
func (l *glibcLayout) pthreadAddr(arch coredump.Arch, tp uint64) uint64 {
	if arch == coredump.ArchARM64 {
		return tp - uint64(l.sizeofPthread)
	}
	return tp
}

// muslLayout is musl's struct pthread (src/internal/pthread_impl.h). Its
// layout changed twice; the variant is chosen by the offset of errno_val
// that __errno_location adds to the thread pointer, and checked against
// each thread's tid.
type muslLayout struct {
	variant *muslVariant
	// base is the offset of struct pthread from the thread pointer
	// (0 on x86-64; minus sizeof(struct pthread) on arm64).
	base   int64
	source string
}

type muslVariant struct {
	versions string
	errno    int64 // errno_val, from the thread pointer's struct pthread
	tid      int64
	fields   []fieldDef
}

type fieldDef struct {
	name string
	off  int64
	size int
}

// musl struct pthread on x86-64 (TLS variant II, self at the thread
// pointer): three layouts, by musl's git history of pthread_impl.h.
var muslVariantsAMD64 = []*muslVariant{
	{versions: "1.2.2 or later", errno: 0x34, tid: 0x30, fields: []fieldDef{
		{"self", 0, 8}, {"dtv", 8, 8}, {"prev", 0x10, 8}, {"next", 0x18, 8}, {"sysinfo", 0x20, 8},
		{"canary", 0x28, 8}, {"tid", 0x30, 4}, {"errno_val", 0x34, 4}, {"detach_state", 0x38, 4},
		{"map_base", 0x48, 8}, {"map_size", 0x50, 8}, {"stack", 0x58, 8}, {"stack_size", 0x60, 8},
		{"guard_size", 0x68, 8}}},
	{versions: "1.1.20 to 1.2.1", errno: 0x3c, tid: 0x38, fields: []fieldDef{
		{"self", 0, 8}, {"dtv", 8, 8}, {"prev", 0x10, 8}, {"next", 0x18, 8}, {"sysinfo", 0x20, 8},
		{"canary", 0x28, 8}, {"tid", 0x38, 4}, {"errno_val", 0x3c, 4}}},
	{versions: "1.1.19 or earlier", errno: 0x44, tid: 0x38, fields: []fieldDef{
		{"self", 0, 8}, {"dtv", 8, 8}, {"sysinfo", 0x20, 8}, {"canary", 0x28, 8},
		{"tid", 0x38, 4}, {"errno_val", 0x44, 4}}},
}

// musl struct pthread on arm64 (TLS_ABOVE_TP: the structure ends at the
// thread pointer, canary and dtv last), 1.2.x.
var muslVariantARM64 = &muslVariant{versions: "1.2.x", errno: 0x24, tid: 0x20, fields: []fieldDef{
	{"self", 0, 8}, {"prev", 8, 8}, {"next", 0x10, 8}, {"sysinfo", 0x18, 8}, {"tid", 0x20, 4},
	{"errno_val", 0x24, 4}, {"detach_state", 0x28, 4}, {"map_base", 0x38, 8}, {"map_size", 0x40, 8},
	{"stack", 0x48, 8}, {"stack_size", 0x50, 8}, {"guard_size", 0x58, 8}}}

// chooseMuslLayout picks musl's struct pthread layout from the thread
// pointer offset of errno that musl's __errno_location computes.
func (r *Runtime) chooseMuslLayout(errnoOff int64, known bool) {
	m := r.musl
	if m == nil || m.variant != nil {
		return
	}
	if r.Arch == coredump.ArchARM64 {
		if !known {
			return
		}
		m.variant = muslVariantARM64
		m.base = errnoOff - muslVariantARM64.errno
		m.source = fmt.Sprintf("musl %s arm64 layout, struct pthread at tp%+#x from __errno_location", m.variant.versions, m.base)
		return
	}
	if known {
		for _, v := range muslVariantsAMD64 {
			if v.errno == errnoOff {
				m.variant = v
				m.source = fmt.Sprintf("musl %s layout, chosen by __errno_location's %%fs:0%+#x", v.versions, errnoOff)
				return
			}
		}
	}
	// No musl-shaped __errno_location: try each layout's tid against the
	// threads' own tids.
	for _, v := range muslVariantsAMD64 {
		match := 0
		for _, t := range r.Proc.Threads {
			if tid, err := r.Proc.ReadUint32(t.TP() + uint64(v.tid)); err == nil && int(tid) == t.TID {
				match++
			}
		}
		if match > 0 && match == len(r.Proc.Threads) {
			m.variant = v
			m.source = fmt.Sprintf("musl %s layout, chosen because every thread's tid is at +%#x", v.versions, v.tid)
			return
		}
	}
}
