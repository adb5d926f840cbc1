package goruntime

import "github.com/coreexplain/coreexplain/coredump/gobin"

// This file holds every piece of knowledge about the Go runtime that is
// not read from the binary itself (its DWARF, symbols or pclntab) and
// that differs, or could differ, between releases. Everything else in the
// package reads the binary. The tests in versions_test.go check these
// facts against the DWARF of binaries built with each supported toolchain.
// Package gobin, which reads a Go binary before there is a process (and
// which package coredump uses to name a stripped binary's functions),
// holds the moduledata offsets it needs itself (ModuledataTextOffset, ...);
// moduledataPrefix below names them, so TestVersionTables checks them
// against each release's DWARF with the rest.

// MinVersion and MaxVersion bound the Go releases this package reads.
var (
	MinVersion = GoVersion{Major: 1, Minor: 21}
	MaxVersion = GoVersion{Major: 1, Minor: 26, Patch: 1 << 20}
)

// defaultFuncFlags are internal/abi.FuncFlagTopFrame, FuncFlagSPWrite and
// FuncFlagAsm: unchanged since they were introduced in Go 1.17 and 1.18.
// Used when the binary has no DWARF to read them from.
func defaultFuncFlags() (topFrame, spWrite, asm uint8) { return 1, 2, 4 }

// moduledataPrefix is the layout of the first fields of runtime.moduledata,
// identical in Go 1.20 through 1.26 (checked against runtime/symtab.go of
// each release); used when the binary has no DWARF. The fields package
// gobin finds the moduledata and runtime.text by are its constants, so
// that TestVersionTables checks them too.
var moduledataPrefix = map[string]int64{
	"pcHeader": gobin.ModuledataPcHeaderOffset, "funcnametab": gobin.ModuledataFuncnametabOffset, "cutab": 32, "filetab": 56, "pctab": 80, "pclntable": 104,
	"ftab": 128, "findfunctab": 152, "minpc": 160, "maxpc": 168, "text": gobin.ModuledataTextOffset, "etext": gobin.ModuledataEtextOffset,
	"noptrdata": 192, "enoptrdata": 200, "data": 208, "edata": 216, "bss": 224, "ebss": 232,
	"noptrbss": 240, "enoptrbss": 248, "covctrs": 256, "ecovctrs": 264, "end": 272,
	"gcdata": 280, "gcbss": 288, "types": 296, "etypes": 304, "rodata": 312, "gofunc": 320,
}

// pcHeaderHasTextStart reports whether runtime.pcHeader still records the
// text start (Go 1.26 stopped storing it, leaving the field zero).
func pcHeaderHasTextStart(v GoVersion) bool { return !v.AtLeast(26) }

// gStatusFallback names goroutine states for binaries that carry neither
// runtime.gStatusStrings (a symbol) nor the _G* constants (DWARF): the
// runtime's gStatusStrings of each release.
func gStatusFallback(v GoVersion) map[uint32]string {
	m := map[uint32]string{0: "idle", 1: "runnable", 2: "running", 3: "syscall", 4: "waiting",
		6: "dead", 8: "copystack", 9: "preempted"}
	if v.AtLeast(26) {
		m[10] = "leaked"
		m[11] = "waiting for cgo callback"
	}
	return m
}

// gStatusConsts are the _G* constants the package relies on, with the
// values every release 1.21–1.26 gives them; DWARF overrides them.
var gStatusConsts = map[string]uint32{
	"_Gidle": 0, "_Grunnable": 1, "_Grunning": 2, "_Gsyscall": 3, "_Gwaiting": 4,
	"_Gdead": 6, "_Gcopystack": 8, "_Gpreempted": 9, "_Gscan": 0x1000,
}

// gStatusConstsSince lists states that exist only from a release on.
var gStatusConstsSince = map[string]struct {
	minor int
	value uint32
}{
	"_Gleaked":    {26, 10},
	"_Gdeadextra": {26, 11},
}

// signalTrampolines are the functions the kernel enters for a signal the
// Go runtime handles: their frame sits directly on the kernel's
// rt_sigframe. runtime.sigtramp (pure Go and cgo), runtime.cgoSigtramp
// (cgo builds, which jumps into sigtramp), runtime.sigreturn__sigaction
// (Go 1.20+, the restorer of pure-Go builds) and runtime.sigreturn (the
// name before).
var signalTrampolines = map[string]bool{
	"runtime.sigtramp":             true,
	"runtime.cgoSigtramp":          true,
	"runtime.sigreturn__sigaction": true,
	"runtime.sigreturn":            true,
}

// crashPlumbing are the functions through which a process dies once the
// decision to crash is taken, and those that run a signal handler: the
// report hides them from the crash story (they stay under --all). The
// unwinder marks such frames Frame.Plumbing, looking C functions up
// without the suffixes of GCC's split-off fragments (coredump.FuncBase).
var crashPlumbing = map[string]bool{
	// Go runtime.
	"runtime.sigtramp": true, "runtime.cgoSigtramp": true, "runtime.sigtrampgo": true,
	"runtime.sighandler": true, "runtime.sigfwdgo": true, "runtime.sigfwd": true,
	"runtime.crash": true, "runtime.raise": true, "runtime.raiseproc": true,
	"runtime.dieFromSignal": true, "runtime.fatalpanic": true, "runtime.fatalthrow": true,
	"runtime.fatalsignal": true, "runtime.startpanic_m": true, "runtime.dopanic_m": true,
	"runtime.throw": true, "runtime.fatal": true, "runtime.badsignal": true,
	"runtime.raisebadsignal": true, "runtime.sigreturn__sigaction": true, "runtime.sigreturn": true,
	"runtime.abort": true, "runtime.printpanics": true, "runtime.preprintpanics": true, "runtime.sigpanic": true,
	"runtime.panicmem": true, "runtime.panicmemAddr": true, "runtime.gopanic": true,
	"runtime.throw.func1": true, "runtime.fatal.func1": true, "runtime.fatalthrow.func1": true,
	"runtime.fatalpanic.func1": true, "runtime.fatalpanic.func2": true,
	"runtime.tracebackothers": true, "runtime.traceback": true, "runtime.traceback1": true,
	"runtime.printDebugLog": true, "runtime.dumpregs": true,
	// C library.
	"raise": true, "abort": true, "gsignal": true, "__restore_rt": true, "__pthread_kill_implementation": true,
	"__pthread_kill_internal": true, "pthread_kill": true, "__GI_raise": true, "__GI_abort": true,
	"__assert_fail_base": true, "__assert_fail": true, "__libc_message": true,
	"__libc_message_impl": true, "malloc_printerr": true, "__fortify_fail": true,
	"__chk_fail": true, "__stack_chk_fail": true, "__kill": true, "kill": true, "tgkill": true,
	"__syscall_cp_asm": true, "__syscall_cp_c": true, "a_crash": true,
	"x_cgo_sigaction": true, "_cgo_sigaction": true,
}

// throwClosures are the closures runtime.throw and runtime.fatal pass to
// systemstack; their funcval carries the fatal error string right after
// the code pointer (runtime/panic.go, unchanged 1.21–1.26).
var throwClosures = []string{"runtime.throw.func1", "runtime.fatal.func1"}

// boundsErrorFmtFallback is runtime.boundsErrorFmts and
// boundsNegErrorFmts (runtime/error.go, the same 1.21–1.26), for binaries
// whose symbols are stripped so that the tables cannot be read from
// memory.
var boundsErrorFmtFallback = []string{
	"index out of range [%x] with length %y",
	"slice bounds out of range [:%x] with length %y",
	"slice bounds out of range [:%x] with capacity %y",
	"slice bounds out of range [%x:%y]",
	"slice bounds out of range [::%x] with length %y",
	"slice bounds out of range [::%x] with capacity %y",
	"slice bounds out of range [:%x:%y]",
	"slice bounds out of range [%x:%y:]",
	"cannot convert slice with length %y to array or pointer to array with length %x",
}

var boundsNegErrorFmtFallback = []string{
	"index out of range [%x]",
	"slice bounds out of range [:%x]",
	"slice bounds out of range [:%x]",
	"slice bounds out of range [%x:]",
	"slice bounds out of range [::%x]",
	"slice bounds out of range [::%x]",
	"slice bounds out of range [:%x:]",
	"slice bounds out of range [%x::]",
}

// asmcgocallSaveSlots are the offsets from the SP runtime.asmcgocall calls
// C with (on the g0 stack) of the two words it saves: the goroutine's
// stack depth (stack.hi minus its SP) and the g. Go 1.21 opened a 64-byte
// frame and called the C function directly (40 and 48); Go 1.22 added
// asmcgocall_landingpad, which tail-calls it, and 16 bytes (0 and 8).
func asmcgocallSaveSlots(v GoVersion) (depth, g uint64) {
	if v.AtLeast(22) {
		return 0, 8
	}
	return 40, 48
}

// Type descriptor encoding (internal/abi/type.go). Kinds are reflect.Kind
// values in the low five bits of Type.Kind_ in every release.
const (
	kindMask       = 0x1f
	tflagUncommon  = 1 << 0
	tflagExtraStar = 1 << 1
	nameEmbedded   = 1 << 3 // abi.Name flag of an embedded struct field
)

// directIface reports whether values of a type are stored in an
// interface's data word itself: Go 1.26 moved the flag from Kind_
// (KindDirectIface, 1<<5) to TFlag (TFlagDirectIface, 1<<5); the bit is
// unused in the other field in every release, so either may carry it.
func directIface(v GoVersion, kind, tflag uint8) bool {
	if v.AtLeast(26) {
		return tflag&(1<<5) != 0
	}
	return kind&(1<<5) != 0
}

// mapTypeSize is the size of the map-specific fields after abi.Type: the
// Swiss-table MapType of Go 1.24+ (Key, Elem, Group, Hasher, GroupSize,
// SlotSize, ElemOff, Flags) or the bucket map's before.
func mapTypeSize(v GoVersion) int64 {
	if v.AtLeast(24) {
		return 64
	}
	return 40
}
