package coredump

import "fmt"

// Signal is a Linux signal number (the generic numbering, shared by amd64
// and arm64).
type Signal int

const (
	SIGHUP    Signal = 1
	SIGINT    Signal = 2
	SIGQUIT   Signal = 3
	SIGILL    Signal = 4
	SIGTRAP   Signal = 5
	SIGABRT   Signal = 6
	SIGBUS    Signal = 7
	SIGFPE    Signal = 8
	SIGKILL   Signal = 9
	SIGUSR1   Signal = 10
	SIGSEGV   Signal = 11
	SIGUSR2   Signal = 12
	SIGPIPE   Signal = 13
	SIGALRM   Signal = 14
	SIGTERM   Signal = 15
	SIGSTKFLT Signal = 16
	SIGCHLD   Signal = 17
	SIGCONT   Signal = 18
	SIGSTOP   Signal = 19
	SIGTSTP   Signal = 20
	SIGTTIN   Signal = 21
	SIGTTOU   Signal = 22
	SIGURG    Signal = 23
	SIGXCPU   Signal = 24
	SIGXFSZ   Signal = 25
	SIGVTALRM Signal = 26
	SIGPROF   Signal = 27
	SIGWINCH  Signal = 28
	SIGIO     Signal = 29
	SIGPWR    Signal = 30
	SIGSYS    Signal = 31
)

var signalNames = [...]string{
	"", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS",
	"SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM",
	"SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN",
	"SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH",
	"SIGIO", "SIGPWR", "SIGSYS",
}

var signalDescriptions = [...]string{
	"", "hangup", "interrupt", "quit", "illegal instruction", "trace/breakpoint trap",
	"aborted", "bus error", "floating point exception", "killed", "user signal 1",
	"segmentation violation", "user signal 2", "broken pipe", "alarm clock",
	"terminated", "stack fault", "child status changed", "continued", "stopped (signal)",
	"stopped", "stopped (tty input)", "stopped (tty output)", "urgent I/O condition",
	"CPU time limit exceeded", "file size limit exceeded", "virtual timer expired",
	"profiling timer expired", "window changed", "I/O possible", "power failure",
	"bad system call",
}

func (s Signal) String() string {
	if s > 0 && int(s) < len(signalNames) {
		return signalNames[s]
	}
	if s >= 32 && s <= 64 {
		return fmt.Sprintf("SIGRT%d", int(s)-32)
	}
	return fmt.Sprintf("signal %d", int(s))
}

// Description is the signal's meaning in words, as strsignal says it.
func (s Signal) Description() string {
	if s > 0 && int(s) < len(signalDescriptions) {
		return signalDescriptions[s]
	}
	return s.String()
}

// IsFault reports whether s is a signal the CPU raises synchronously for the
// instruction that caused it.
func (s Signal) IsFault() bool {
	switch s {
	case SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP:
		return true
	}
	return false
}

// Generic si_code values (any signal).
const (
	SI_USER    = 0
	SI_KERNEL  = 0x80
	SI_QUEUE   = -1
	SI_TIMER   = -2
	SI_MESGQ   = -3
	SI_ASYNCIO = -4
	SI_SIGIO   = -5
	SI_TKILL   = -6
)

// Fault si_code values, per signal.
const (
	SEGV_MAPERR   = 1
	SEGV_ACCERR   = 2
	SEGV_BNDERR   = 3
	SEGV_PKUERR   = 4
	BUS_ADRALN    = 1
	BUS_ADRERR    = 2
	BUS_OBJERR    = 3
	BUS_MCEERR_AR = 4
	BUS_MCEERR_AO = 5
	FPE_INTDIV    = 1
	FPE_INTOVF    = 2
	ILL_ILLOPC    = 1
	ILL_ILLOPN    = 2
	ILL_ILLADR    = 3
	ILL_ILLTRP    = 4
	ILL_PRVOPC    = 5
	ILL_PRVREG    = 6
	ILL_COPROC    = 7
	ILL_BADSTK    = 8
	TRAP_BRKPT    = 1
	TRAP_TRACE    = 2
)

var genericCodes = map[int32]string{
	SI_USER: "SI_USER", SI_KERNEL: "SI_KERNEL", SI_QUEUE: "SI_QUEUE", SI_TIMER: "SI_TIMER",
	SI_MESGQ: "SI_MESGQ", SI_ASYNCIO: "SI_ASYNCIO", SI_SIGIO: "SI_SIGIO", SI_TKILL: "SI_TKILL",
}

var faultCodes = map[Signal][]string{
	SIGSEGV: {"", "SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR", "SEGV_ACCADI",
		"SEGV_ADIDERR", "SEGV_ADIPERR", "SEGV_MTEAERR", "SEGV_MTESERR", "SEGV_CPERR"},
	SIGBUS: {"", "BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR", "BUS_MCEERR_AO"},
	SIGFPE: {"", "FPE_INTDIV", "FPE_INTOVF", "FPE_FLTDIV", "FPE_FLTOVF", "FPE_FLTUND",
		"FPE_FLTRES", "FPE_FLTINV", "FPE_FLTSUB", "", "", "FPE_CONDTRAP"},
	SIGILL: {"", "ILL_ILLOPC", "ILL_ILLOPN", "ILL_ILLADR", "ILL_ILLTRP", "ILL_PRVOPC",
		"ILL_PRVREG", "ILL_COPROC", "ILL_BADSTK", "ILL_BADIADDR"},
	SIGTRAP: {"", "TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT", "TRAP_UNK", "TRAP_PERF"},
}

// CodeName names si_code code of signal sig, e.g. SEGV_MAPERR or SI_TKILL.
func CodeName(sig Signal, code int32) string {
	if n, ok := genericCodes[code]; ok {
		return n
	}
	if names, ok := faultCodes[sig]; ok && code > 0 && int(code) < len(names) && names[code] != "" {
		return names[code]
	}
	return fmt.Sprintf("code %d", code)
}

// SigInfo is a decoded siginfo_t: what the kernel knew about a signal.
type SigInfo struct {
	Signo Signal
	Errno int32
	Code  int32
	// Addr is si_addr, the faulting address, for SIGSEGV, SIGBUS, SIGILL,
	// SIGFPE and SIGTRAP raised by the CPU.
	Addr uint64
	// PID and UID are the sender of a signal sent by a process (si_code
	// SI_USER, SI_TKILL, SI_QUEUE).
	PID int32
	UID uint32
}

// CodeName names si_code, e.g. SEGV_MAPERR.
func (s *SigInfo) CodeName() string { return CodeName(s.Signo, s.Code) }

// Sent reports whether a process sent the signal (kill, tgkill, sigqueue,
// raise, abort) rather than the kernel raising it for a fault.
func (s *SigInfo) Sent() bool { return s.Code <= 0 }

// Synchronous reports whether the CPU raised the signal for the faulting
// instruction; SI_KERNEL counts, since general-protection faults arrive as
// SIGSEGV with SI_KERNEL.
func (s *SigInfo) Synchronous() bool { return s.Signo.IsFault() && s.Code > 0 }

// HasAddr reports whether Addr is meaningful for this signal and code.
func (s *SigInfo) HasAddr() bool { return s.Synchronous() }

// decodeSigInfo decodes the 128-byte siginfo_t of Linux amd64 and arm64.
func decodeSigInfo(b []byte) (*SigInfo, error) {
	if len(b) < 32 {
		return nil, fmt.Errorf("siginfo is %d bytes, want at least 32", len(b))
	}
	si := &SigInfo{
		Signo: Signal(int32(le.Uint32(b[0:]))),
		Errno: int32(le.Uint32(b[4:])),
		Code:  int32(le.Uint32(b[8:])),
	}
	if si.Synchronous() {
		si.Addr = le.Uint64(b[16:])
	} else {
		si.PID = int32(le.Uint32(b[16:]))
		si.UID = le.Uint32(b[20:])
	}
	return si, nil
}
