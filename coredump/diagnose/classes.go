package diagnose

// Class is the stable machine name of a kind of finding: what the JSON
// report's findings[].class says, what crash signatures start with and what
// users filter on. The constants below are every class a rule can emit;
// rules use them, never a string of their own (TestRulesUseClassConstants
// checks), so Classes() is the whole set and README lists exactly it
// (TestReadmeListsEveryClass).
type Class string

func (c Class) String() string { return string(c) }

// Faults in memory and code.
const (
	// NilDeref: a Go nil pointer dereference, named down to the field.
	NilDeref Class = "nil-deref"
	// UnmappedAccess: a read, write or jump to an address no mapping holds
	// (a guard page, a freed region, a wild pointer).
	UnmappedAccess Class = "unmapped-access"
	// WriteToReadonly: a write to mapped memory that is not writable
	// (.rodata, string literals, code).
	WriteToReadonly Class = "write-to-readonly"
	// ExecNonExecutable: a jump or call to mapped memory that is not code
	// (a corrupt function pointer or return address).
	ExecNonExecutable Class = "exec-non-executable"
	// StackOverflow: a C stack ran into its guard page, or a goroutine's
	// stack could not grow past runtime.maxstacksize.
	StackOverflow Class = "stack-overflow"
	// Misaligned: an access the CPU refuses because of its alignment (an
	// aligned vector load, SIGBUS BUS_ADRALN).
	Misaligned Class = "misaligned"
	// NonCanonicalAddress: use of an x86-64 address whose top bits are not
	// a sign extension, which the kernel reports as SIGSEGV at address 0.
	NonCanonicalAddress Class = "non-canonical-address"
	// BusErrorMmap: SIGBUS on a file mapping (the page lies past the end
	// of a truncated file) or a hardware memory error.
	BusErrorMmap Class = "bus-error-mmap"
	// IllegalInstruction: SIGILL: a deliberate trap, or an instruction the
	// CPU lacks.
	IllegalInstruction Class = "illegal-instruction"
	// CDivideError: integer division by zero or overflow in C code.
	CDivideError Class = "c-divide-error"
)

// Deaths the Go runtime reports, and signals from outside.
const (
	// GoPanic: an unrecovered Go panic, with its value.
	GoPanic Class = "go-panic"
	// GoFatal: a fatal error the runtime throws (concurrent map writes,
	// out of memory, all goroutines asleep, ...).
	GoFatal Class = "go-fatal"
	// ExternalSignal: a signal sent by another process or by the process
	// itself (kill, SIGQUIT), with the sender.
	ExternalSignal Class = "external-signal"
)

// Misuse of memory across the cgo boundary.
const (
	// DanglingSlice: a Go slice over C memory that was freed.
	DanglingSlice Class = "dangling-slice"
	// CRetainsGoPointer: C memory holds a pointer into the Go heap, which
	// the cgo pointer-passing rules forbid.
	CRetainsGoPointer Class = "c-retains-go-pointer"
)

// The C runtime.
const (
	// CAbort: C code called abort (a failed assert, stack smashing
	// detected, a libc abort message).
	CAbort Class = "c-abort"
	// CHeapCorruption: the C allocator found its heap corrupt (double
	// free, a corrupted chunk).
	CHeapCorruption Class = "c-heap-corruption"
	// LibcMix: glibc and musl both mapped in one process.
	LibcMix Class = "libc-mix"
	// ErrnoSlotMismatch: the process's C code puts errno in more than one
	// thread-local slot (two C runtimes, or a slot inside glibc's TCB), so
	// a write and a read of errno can miss each other.
	ErrnoSlotMismatch Class = "errno-slot-mismatch"
	// ErrnoWrongThread: errno read on a different OS thread than the call
	// that set it (a goroutine moved between threads).
	ErrnoWrongThread Class = "errno-wrong-thread"
)

// Hangs: why a process was stuck rather than why it died.
const (
	// LockContention: goroutines blocked on a lock, with its holder.
	LockContention Class = "lock-contention"
	// GoroutineLeak: many goroutines blocked for long at the same place.
	GoroutineLeak Class = "goroutine-leak"
	// StuckInC: an OS thread in a cgo call, blocked in C (a system call,
	// a lock).
	StuckInC Class = "stuck-in-c"
)

// classes lists every constant above, in the order README gives them.
var classes = []Class{
	NilDeref, UnmappedAccess, WriteToReadonly, ExecNonExecutable, StackOverflow,
	Misaligned, NonCanonicalAddress, BusErrorMmap, IllegalInstruction, CDivideError,
	GoPanic, GoFatal, ExternalSignal,
	DanglingSlice, CRetainsGoPointer,
	CAbort, CHeapCorruption, LibcMix, ErrnoSlotMismatch, ErrnoWrongThread,
	LockContention, GoroutineLeak, StuckInC,
}

// Classes returns every class a rule can emit.
func Classes() []Class { return append([]Class(nil), classes...) }

// Hang reports whether c explains why a process was stuck rather than why
// it died: a dump on request has one cause of each kind.
func (c Class) Hang() bool {
	return c == LockContention || c == StuckInC || c == GoroutineLeak
}
