package report

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
)

// signatureFrames is how many normalised frames a signature keeps.
const signatureFrames = 3

// Signature builds the crash signature: the class of the cause (with its
// key, e.g. the abort message), then up to three normalised frames of the
// crash stack. Two cores of the same bug from different runs or hosts get
// the same signature: there are no addresses, no goroutine ids, no
// closure numbers; frames without a symbol are named by the build ID of
// their module and the offset in it.
func Signature(r *Report) string {
	class, key, fn := "unknown", "", ""
	for _, f := range r.Findings {
		if f.Cause {
			class, key = f.Class.String(), f.Key
			if f.Location != nil {
				fn = f.Location.Function
			}
			break
		}
	}
	head := class
	if key != "" {
		head += ":" + fmt.Sprintf("%q", key)
	}
	var frames []Frame
	if r.Crash != nil {
		frames = r.Crash.Frames
	} else if r.Stopped != nil {
		frames = r.Stopped.Frames
	}
	parts := signatureParts(frames, r.Process.Images)
	if len(parts) == 0 && fn != "" {
		parts = []string{normaliseFunc(fn)}
	}
	if len(parts) == 0 {
		return head
	}
	return head + " | " + strings.Join(parts, " | ")
}

// signatureParts picks the frames that identify a crash: allocator and
// string frames at the fault are kept as a prefix (a crash in free() is
// about its caller, but "in free" matters), the runtime's and cgo's
// plumbing is dropped, and the first frames of the program follow.
func signatureParts(frames []Frame, images []Image) []string {
	var prefix, parts []string
	inApp := false
	for _, f := range frames {
		if f.Plumbing || f.Inlined && f.Function == "" {
			continue
		}
		name := normaliseFunc(f.Function)
		if name == "" || unnamed(f) {
			name = unsymbolised(f, images)
		}
		switch {
		case name == "":
			continue
		case !inApp && keptAsPrefix(name):
			if len(prefix) == 0 || prefix[len(prefix)-1] != name {
				prefix = append(prefix, name)
			}
			continue
		case plumbingFunc(name):
			continue
		}
		inApp = true
		if len(parts) == 0 || parts[len(parts)-1] != name {
			parts = append(parts, name)
		}
		if len(parts) == signatureFrames {
			break
		}
	}
	if len(parts) == 0 {
		// A crash entirely inside the runtime or libc: name where.
		for _, f := range frames {
			if name := normaliseFunc(f.Function); name != "" && !f.Plumbing {
				parts = append(parts, name)
				if len(parts) == signatureFrames {
					break
				}
			}
		}
	}
	if len(prefix) > 2 {
		prefix = prefix[len(prefix)-2:]
	}
	return append(prefix, parts...)
}

var (
	reFuncN    = regexp.MustCompile(`(\.func\d+)+(\.\d+)*$|\.gowrap\d+$|\.deferwrap\d+$`)
	reGeneric  = regexp.MustCompile(`\[[^\[\]]*\]`)
	reLocalSym = regexp.MustCompile(`\.(constprop|isra|part|cold|lto_priv)\.\d+$`)
)

// normaliseFunc strips what differs between builds of the same code:
// closure numbers, generic shape arguments, compiler clone suffixes.
func normaliseFunc(name string) string {
	for i := 0; i < 4 && reGeneric.MatchString(name); i++ {
		name = reGeneric.ReplaceAllString(name, "")
	}
	name = reFuncN.ReplaceAllString(name, "")
	for reLocalSym.MatchString(name) {
		name = reLocalSym.ReplaceAllString(name, "")
	}
	return strings.TrimSuffix(name, ".abi0")
}

// plumbingFunc reports frames that say how the program crashed, not where:
// the Go runtime, cgo's glue, and libc's abort and thread-start paths.
func plumbingFunc(name string) bool {
	name = coredump.FuncBase(name)
	for _, p := range plumbingPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return plumbingNames[name] || strings.Contains(name, "._Cfunc_")
}

var plumbingPrefixes = []string{"runtime.", "runtime/cgo.", "_cgo_", "x_cgo_", "crosscall", "__libc_", "__GI_", "_cgoexp_"}

var plumbingNames = map[string]bool{
	"raise": true, "abort": true, "gsignal": true, "__assert_fail": true, "__assert_fail_base": true,
	"malloc_printerr": true, "__fortify_fail": true, "__stack_chk_fail": true, "__restore_rt": true,
	"_start": true, "start_thread": true, "clone": true, "clone3": true, "pthread_kill": true,
	"__pthread_kill_implementation": true, "__pthread_kill_internal": true,
}

// keptAsPrefix reports C library functions whose presence at the fault is
// part of the bug's identity.
func keptAsPrefix(name string) bool {
	switch strings.TrimLeft(name, "_") {
	case "free", "malloc", "realloc", "calloc", "memcpy", "memmove", "memset", "strlen", "strcpy",
		"strcmp", "int_free", "int_malloc", "int_realloc", "libc_free", "libc_malloc", "libc_realloc",
		"memcpy_avx_unaligned_erms", "memmove_avx_unaligned_erms", "strlen_avx2", "tcache_put", "tcache_get":
		return true
	}
	return false
}

// unnamed reports a library frame no symbol names: its Function is
// "module+offset".
func unnamed(f Frame) bool {
	return f.Module != "" && strings.HasPrefix(f.Function, f.Module+"+")
}

// unsymbolised names a frame without a symbol by its module's build ID and
// the offset in the module.
func unsymbolised(f Frame, images []Image) string {
	if f.Module == "" {
		return ""
	}
	for _, im := range images {
		if baseName(im.Path) == f.Module && uint64(f.PC) >= uint64(im.Base) {
			id := im.BuildID
			if len(id) > 12 {
				id = id[:12]
			}
			if id == "" {
				id = f.Module
			}
			return fmt.Sprintf("%s+%#x", id, uint64(f.PC)-uint64(im.Base))
		}
	}
	return f.Module + "+?"
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
