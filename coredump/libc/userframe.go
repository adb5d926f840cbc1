package libc

import (
	"debug/dwarf"
	"sort"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
)

// C library functions that abort or check the heap, by the names glibc and
// musl give them; in a static binary they tell the C library's frames from
// the program's when no debug information does.
var libcFuncs = map[string]bool{
	"abort": true, "raise": true, "pthread_kill": true, "__assert_fail": true, "__assert_fail_base": true,
	"__libc_message": true, "__libc_message_impl": true, "__libc_fatal": true, "malloc_printerr": true,
	"__stack_chk_fail": true, "__fortify_fail": true, "__chk_fail": true, "a_crash": true,
	"malloc": true, "free": true, "realloc": true, "calloc": true, "reallocarray": true,
	"posix_memalign": true, "aligned_alloc": true, "memalign": true, "cfree": true,
	"_int_malloc": true, "_int_free": true, "_int_realloc": true, "malloc_consolidate": true,
	"unlink_chunk": true, "tcache_get": true, "tcache_put": true, "sysmalloc": true,
	"get_meta": true, "enframe": true, "alloc_slot": true, "alloc_group": true, "nontrivial_free": true,
	"longjmp": true, "_longjmp": true, "siglongjmp": true, "__longjmp": true, "__longjmp_chk": true,
	"exit": true, "__run_exit_handlers": true,
}

// MallocFuncs are the C library's allocator entry points and internals.
var mallocFuncs = map[string]bool{
	"malloc": true, "free": true, "realloc": true, "calloc": true, "reallocarray": true, "cfree": true,
	"posix_memalign": true, "aligned_alloc": true, "memalign": true, "_int_malloc": true, "_int_free": true,
	"_int_realloc": true, "malloc_consolidate": true, "unlink_chunk": true, "sysmalloc": true,
	"malloc_printerr": true, "get_meta": true, "enframe": true, "alloc_slot": true, "alloc_group": true,
	"nontrivial_free": true,
}

// IsMallocFunc reports whether a function name is part of a C library's
// allocator (glibc's __libc_malloc and friends included).
func IsMallocFunc(name string) bool {
	name = coredump.FuncBase(name)
	n := strings.TrimPrefix(strings.TrimPrefix(name, "__libc_"), "__")
	n = strings.TrimSuffix(n, "_impl")
	return mallocFuncs[name] || mallocFuncs[n]
}

// InLibc reports whether a frame runs C library (or dynamic loader) code
// rather than the program's.
func (r *Runtime) InLibc(f Frame) bool {
	im := f.Image
	if im == nil {
		return false
	}
	if strings.HasPrefix(im.Name(), "ld-") {
		return true
	}
	lib := r.Lib(im)
	if lib == nil {
		return false
	}
	if !lib.Embedded {
		return true
	}
	// The C library is linked into this image with the program's own
	// code: the program's C code has line information, libc.a's has not.
	if isGoFrame(f) {
		return false
	}
	if r.hasCLines(im, f.PC) {
		return false
	}
	n := coredump.FuncBase(f.Func)
	return libcFuncs[n] || IsMallocFunc(n) || strings.HasPrefix(n, "__") || r.hasAnyCLines(im)
}

// UserFrame returns the first frame of the program's own C code: the
// caller of the C library function that aborted or faulted.
func (r *Runtime) UserFrame(frames []Frame) (Frame, bool) {
	for _, f := range frames {
		if isGoFrame(f) {
			return Frame{}, false
		}
		if f.Func != "" && !r.InLibc(f) && f.Func != "<signal handler called>" {
			return f, true
		}
	}
	return Frame{}, false
}

// cRanges are the address ranges of an image's C compile units.
type cRanges struct {
	ranges [][2]uint64 // sorted run-time ranges
}

func (r *Runtime) cLineRanges(im *coredump.Image) *cRanges {
	if cr, ok := r.cranges[im]; ok {
		return cr
	}
	cr := &cRanges{}
	r.cranges[im] = cr
	ei := r.elf(im)
	if !ei.ok() {
		return cr
	}
	d, err := ei.f.DWARF()
	if err != nil {
		return cr
	}
	rd := d.Reader()
	for {
		e, err := rd.Next()
		if err != nil || e == nil {
			break
		}
		if e.Tag != dwarf.TagCompileUnit {
			rd.SkipChildren()
			continue
		}
		lang, _ := e.Val(dwarf.AttrLanguage).(int64)
		name, _ := e.Val(dwarf.AttrName).(string)
		// C89, C, C99, C11, C17 and later; not the C runtime's start files.
		isC := lang == 0x1 || lang == 0x2 || lang == 0xc || lang == 0x1d || lang == 0x2c
		if isC && !strings.HasPrefix(name, "crt") && !strings.Contains(name, "/crt") {
			if rs, err := d.Ranges(e); err == nil {
				for _, rg := range rs {
					cr.ranges = append(cr.ranges, [2]uint64{rg[0] + im.Bias, rg[1] + im.Bias})
				}
			}
		}
		rd.SkipChildren()
	}
	sort.Slice(cr.ranges, func(i, j int) bool { return cr.ranges[i][0] < cr.ranges[j][0] })
	return cr
}

func (r *Runtime) hasCLines(im *coredump.Image, pc uint64) bool {
	rs := r.cLineRanges(im).ranges
	i := sort.Search(len(rs), func(i int) bool { return rs[i][0] > pc }) - 1
	return i >= 0 && pc < rs[i][1]
}

func (r *Runtime) hasAnyCLines(im *coredump.Image) bool { return len(r.cLineRanges(im).ranges) > 0 }
