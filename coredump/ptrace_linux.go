package coredump

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// ptrace requests and options (include/uapi/linux/ptrace.h).
const (
	ptraceCont       = 7
	ptraceGetFPRegs  = 14
	ptraceDetach     = 17
	ptraceSetOptions = 0x4200
	ptraceGetEvent   = 0x4201
	ptraceGetSigInfo = 0x4202
	ptraceGetRegSet  = 0x4204
	ptraceSeize      = 0x4206
	ptraceInterrupt  = 0x4207

	ptraceOTraceClone = 0x8
	ptraceOTraceExec  = 0x10

	ptraceEventClone = 3
	ptraceEventExec  = 4
	ptraceEventStop  = 128

	// wait4 flags: __WALL waits for threads as well as processes;
	// __WNOTHREAD only for tracees and children of the calling thread, so
	// the tracer never reaps a child some other part of the program
	// started and waits for.
	waitAll      = 0x40000000
	waitNoThread = 0x20000000
)

// tracer runs every ptrace request of one tracing session on one locked OS
// thread: the kernel binds a tracee to the thread that attached it, and
// only that thread may issue requests for it or wait for its stops.
//
// When the tracer is closed its goroutine returns while still locked, so
// the OS thread exits; the kernel then detaches whatever tracees are left
// (exit_ptrace), which is the last line of defence that leaves a target
// running even if an orderly detach failed.
type tracer struct {
	reqs chan func()
	done chan struct{}
	tid  int // the tracer thread
}

func newTracer() (*tracer, error) {
	t := &tracer{reqs: make(chan func()), done: make(chan struct{})}
	started := make(chan error, 1)
	go t.start(started)
	if err := <-started; err != nil {
		return nil, err
	}
	return t, nil
}

// start locks a thread other than the process's main thread: Go never
// terminates the main thread, so tracees of a tracer running there would
// stay attached until the process exits.
func (t *tracer) start(started chan<- error) {
	runtime.LockOSThread()
	if syscall.Gettid() == syscall.Getpid() {
		// While this goroutine keeps the main thread locked and blocked,
		// the new goroutine cannot be scheduled on it.
		go t.start(started)
		<-t.done
		runtime.UnlockOSThread()
		return
	}
	t.tid = syscall.Gettid()
	started <- nil
	for f := range t.reqs {
		f()
	}
	close(t.done)
	// Return without UnlockOSThread: the thread exits with the goroutine.
}

// do runs f on the tracer thread and returns its error. Called from the
// tracer thread itself (only its locked goroutine runs there), it runs f
// at once.
func (t *tracer) do(f func() error) error {
	if syscall.Gettid() == t.tid {
		return f()
	}
	errc := make(chan error, 1)
	select {
	case t.reqs <- func() { errc <- f() }:
	case <-t.done:
		return errTracerClosed
	}
	return <-errc
}

var errTracerClosed = errors.New("ptrace session already ended")

// close ends the tracer thread; tracees still attached are detached by the
// kernel as the thread exits.
func (t *tracer) close() {
	select {
	case <-t.done:
		return
	default:
	}
	defer func() { recover() }() // closed twice concurrently
	close(t.reqs)
	<-t.done
}

// ptrace issues one request; it must run on the tracer thread.
func ptrace(req int, tid int, addr, data uintptr) error {
	_, _, e := syscall.Syscall6(syscall.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// getRegSet reads one register set (NT_PRSTATUS, NT_PRFPREG,
// NT_X86_XSTATE, NT_ARM_TLS) into buf and returns the bytes the kernel
// filled.
func getRegSet(tid int, typ NoteType, buf []byte) ([]byte, error) {
	iov := syscall.Iovec{Base: &buf[0], Len: uint64(len(buf))}
	err := ptrace(ptraceGetRegSet, tid, uintptr(typ), uintptr(unsafe.Pointer(&iov)))
	runtime.KeepAlive(buf)
	if err != nil {
		return nil, err
	}
	return buf[:min(int(iov.Len), len(buf))], nil
}

// getSigInfo reads the siginfo of the signal a tracee is stopped for.
func getSigInfo(tid int) ([]byte, error) {
	buf := make([]byte, 128)
	err := ptrace(ptraceGetSigInfo, tid, 0, uintptr(unsafe.Pointer(&buf[0])))
	runtime.KeepAlive(buf)
	return buf, err
}

func getEventMsg(tid int) (uint64, error) {
	var v uint64
	err := ptrace(ptraceGetEvent, tid, 0, uintptr(unsafe.Pointer(&v)))
	return v, err
}

// wait4 waits for a state change of tid (or of any tracee of this thread
// when tid is -1).
func wait4(tid int, flags int) (int, syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	for {
		wpid, err := syscall.Wait4(tid, &ws, flags|waitAll|waitNoThread, nil)
		if err == syscall.EINTR {
			continue
		}
		return wpid, ws, err
	}
}

// ptraceEvent returns the PTRACE_EVENT_* of a stop status, 0 for a plain
// signal-delivery-stop.
func ptraceEvent(ws syscall.WaitStatus) int { return int(ws>>16) & 0xff }

// threadState is what the tracer knows about one tracee thread.
type threadState uint8

const (
	tsRunning threadState = iota
	tsStopped
	tsGone
)

// tracee is one traced thread.
type tracee struct {
	tid   int
	state threadState
	// sig is a signal the thread was about to receive when it stopped
	// (a signal-delivery-stop); it is delivered when the thread resumes
	// so the target never loses a signal because we looked at it.
	sig syscall.Signal
	// fresh marks a thread created by a traced clone whose initial
	// SIGSTOP must be swallowed.
	fresh bool
}

// stopTimeoutError reports threads that did not stop in time.
type stopTimeoutError struct {
	pid     int
	tids    []int
	timeout time.Duration
}

func (e *stopTimeoutError) Error() string {
	return fmt.Sprintf("PID %d: %d thread(s) did not stop within %s (first: %s)", e.pid, len(e.tids), e.timeout,
		describeTask(e.pid, e.tids[0]))
}
