package coredump

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LiveOptions control how a live process is opened.
type LiveOptions struct {
	// Sysroot is where the target's files are found. "" picks the
	// target's own root (/proc/PID/root) when it differs from ours, so a
	// process in a container is read with its own libraries.
	Sysroot string
	// StopTimeout bounds how long Stop waits for the threads to stop
	// (a thread in uninterruptible sleep cannot stop); 0 means 5 s.
	StopTimeout time.Duration
}

const defaultStopTimeout = 5 * time.Second

// OpenLive opens the running process pid without stopping it: its
// mappings and their files (verified like a core's), auxiliary vector and
// command line. Static facts, the executable's symbols and debug
// information, can be loaded now while the process keeps running; Stop
// then freezes it for a consistent snapshot of threads and memory, and
// Detach (or Close) lets it run on.
func OpenLive(pid int, opts LiveOptions) (*Process, error) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		return nil, liveErr(pid, "live processes are supported on amd64 and arm64 only", nil)
	}
	if pid <= 0 {
		return nil, liveErr(pid, "not a process ID", nil)
	}
	if pid == os.Getpid() {
		return nil, liveErr(pid, "that is coreexplain itself", nil)
	}
	st, err := readProcStatus(pid, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, liveErr(pid, "no such process", nil)
		}
		return nil, liveErr(pid, "cannot read its status", err)
	}
	if st.tgid != pid {
		return nil, liveErr(pid, fmt.Sprintf("this is a thread of process %d; attach to %d", st.tgid, st.tgid), nil)
	}
	if st.state == 'Z' || st.state == 'X' {
		return nil, liveErr(pid, "the process has exited (zombie, not yet reaped by its parent)", nil)
	}
	if st.kthread {
		return nil, liveErr(pid, "a kernel thread, not a user process", nil)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, liveErr(pid, "no such process", nil)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, liveErr(pid, "not permitted to trace it: "+whyNoPermission(pid, st), nil)
		}
		return nil, liveErr(pid, "cannot open its memory", err)
	}
	lm := &liveMemory{pid: pid, mem: mem, status: st, stopTimeout: opts.StopTimeout}
	if lm.stopTimeout <= 0 {
		lm.stopTimeout = defaultStopTimeout
	}
	p := &Process{Arch: hostArch(), PID: pid, PPID: st.ppid, UID: st.uid, Command: st.name, src: lm}
	lm.p = p
	if err := lm.open(opts, true); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Attach opens the live process pid and stops it: OpenLive followed by
// Stop. The caller must Detach or Close it.
func Attach(pid int, opts LiveOptions) (*Process, error) {
	p, err := OpenLive(pid, opts)
	if err != nil {
		return nil, err
	}
	if err := p.Stop(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func liveErr(pid int, msg string, err error) error {
	return &InputError{Path: fmt.Sprintf("PID %d", pid), Msg: msg, Err: err}
}

func hostArch() Arch {
	if runtime.GOARCH == "arm64" {
		return ArchARM64
	}
	return ArchAMD64
}

// ErrNotLive is returned by the live-process methods of a core.
var ErrNotLive = errors.New("not a live process")

// ErrProcessExited reports that the target exited while it was traced.
var ErrProcessExited = errors.New("the process exited")

func (p *Process) live() (*liveMemory, error) {
	lm, ok := p.src.(*liveMemory)
	if !ok {
		return nil, ErrNotLive
	}
	return lm, nil
}

// Stop freezes every thread of a live process (PTRACE_SEIZE and
// PTRACE_INTERRUPT, without sending it a signal), reads their registers and
// rereads the memory map. Memory reads are then a consistent snapshot
// until Detach. When Stop fails the process is left running.
func (p *Process) Stop() error {
	lm, err := p.live()
	if err != nil {
		return err
	}
	return lm.stop()
}

// Detach lets every thread of a live process run again and ends the
// tracing session. It is safe to call at any time, more than once and from
// any goroutine, also while Stop is still waiting for threads: Stop then
// gives up and the process is left running.
func (p *Process) Detach() error {
	lm, err := p.live()
	if err != nil {
		return err
	}
	return lm.detach()
}

// Stopped reports whether a live process is stopped now.
func (p *Process) Stopped() bool {
	lm, err := p.live()
	return err == nil && lm.stopped.Load()
}

// Frozen is how long a live process was stopped: the time from the start
// of the last Stop to the end of the Detach that followed it (or until now
// while it is still stopped).
func (p *Process) Frozen() time.Duration {
	lm, err := p.live()
	if err != nil {
		return 0
	}
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.stopStart.IsZero() {
		return 0
	}
	if lm.stopEnd.IsZero() {
		return time.Since(lm.stopStart)
	}
	return lm.stopEnd.Sub(lm.stopStart)
}

// Clock is the system's CLOCK_MONOTONIC, in nanoseconds, when the live
// process was last stopped: the clock the Go runtime's nanotime reads, so
// a goroutine's g.waitsince subtracted from it is how long it had waited.
// A core has no such clock.
func (p *Process) Clock() (int64, bool) {
	lm, err := p.live()
	if err != nil {
		return 0, false
	}
	lm.mu.Lock()
	defer lm.mu.Unlock()
	return lm.clock, lm.clock != 0
}

// liveMemory is the memory source of a live process and the state of its
// tracing session.
type liveMemory struct {
	p           *Process
	pid         int
	mem         *os.File // /proc/PID/mem
	status      procStatus
	stopTimeout time.Duration

	// opMu serialises Stop and Detach; cancel lets Detach cut short a
	// Stop that is still waiting for threads.
	opMu    sync.Mutex
	cancel  atomic.Bool
	stopped atomic.Bool
	closed  bool // under opMu: Close was called, Stop refuses
	tr      *tracer
	// threads is used on the tracer thread only.
	threads map[int]*tracee

	mu        sync.Mutex
	stopStart time.Time
	stopEnd   time.Time
	clock     int64             // CLOCK_MONOTONIC when the threads were stopped
	cache     map[uint64][]byte // pages read while stopped
	pagemap   *os.File          // /proc/PID/pagemap, opened for writing a core
	noPagemap bool
}

// maxCachedPages bounds the page cache of a stopped process (256 MiB).
const maxCachedPages = 1 << 16

// open reads the process's static facts. needExe says whether a process
// whose executable cannot be read is an error.
func (lm *liveMemory) open(opts LiveOptions, needExe bool) error {
	p, pid := lm.p, lm.pid
	switch {
	case opts.Sysroot != "":
		p.Sysroot = opts.Sysroot
	case !sameRoot(pid):
		// A process in another mount namespace (a container): its paths
		// name files under its own root.
		p.Sysroot = fmt.Sprintf("/proc/%d/root", pid)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		p.Args = splitCmdline(b)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid))
	if err != nil {
		return liveErr(pid, "cannot read its auxiliary vector", err)
	}
	p.Auxv = decodeAuxv(b)
	maps, err := readMaps(pid)
	if err != nil {
		return liveErr(pid, "cannot read its memory map", err)
	}
	if len(maps) == 0 {
		return liveErr(pid, "it has no memory map (a kernel thread?)", nil)
	}
	p.setLiveMappings(maps)
	p.loadImages()
	lm.recoverReplacedImages()
	if entry, ok := p.Auxv.Lookup(AT_ENTRY); ok {
		p.Exe = p.FindImage(entry)
	}
	switch {
	case p.Exe == nil && needExe:
		return liveErr(pid, "cannot find its executable among its mappings", nil)
	case p.Exe == nil:
	case !p.Exe.Status.Usable() && needExe:
		return liveErr(pid, fmt.Sprintf("its executable %s cannot be read: %s", p.Exe.Path, p.Exe.statusText()), nil)
	default:
		p.Exe.IsExe = true
	}
	return nil
}

// setLiveMappings installs the mappings read from /proc/PID/maps.
func (p *Process) setLiveMappings(ms []*Mapping) {
	ms, _ = sortMappings(ms)
	p.Mappings = ms
	p.Files = p.Files[:0]
	for _, m := range ms {
		if strings.HasPrefix(m.Path, "/") {
			p.Files = append(p.Files, FileMapping{Start: m.Start, End: m.End, Offset: m.Offset, Path: m.Path})
		}
	}
}

// recoverReplacedImages handles a file deleted or replaced on disk while
// the process still maps it (a deployment that renamed a new binary over
// the old one): the mapped file is still reachable through /proc/PID/exe
// and /proc/PID/map_files, and is used when its build ID matches.
func (lm *liveMemory) recoverReplacedImages() {
	p := lm.p
	entry, _ := p.Auxv.Lookup(AT_ENTRY)
	for _, im := range p.Images {
		if (im.Status != ImageMissing && im.Status != ImageMismatch) || len(im.Mappings) == 0 {
			continue
		}
		head := im.Mappings[0]
		for _, m := range im.Mappings {
			if m.Offset == 0 {
				head = m
				break
			}
		}
		var cands []string
		if im.Contains(entry) {
			cands = append(cands, fmt.Sprintf("/proc/%d/exe", lm.pid))
		}
		cands = append(cands, fmt.Sprintf("/proc/%d/map_files/%x-%x", lm.pid, head.Start, head.End))
		coreHdr := p.coreHeaderPage(head)
		for _, c := range cands {
			fileHdr, err := readFileHead(c)
			if err != nil {
				continue
			}
			fh, err := parseELFHeader(fileHdr)
			if err != nil {
				continue
			}
			var ids BuildIDs
			if f, err := os.Open(c); err == nil {
				ids = buildIDsFromNotes(fh, f, false)
				f.Close()
			}
			was := im.statusText()
			hostPath, fileIDs, note := im.HostPath, im.FileIDs, im.Note
			im.HostPath, im.FileIDs, im.Note = c, ids, ""
			if verifyImage(im, coreHdr, fileHdr) == ImageVerified {
				im.Status = ImageVerified
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s on disk is not the file the process maps (%s); the mapped file was read through %s",
					im.Path, was, c))
				break
			}
			im.HostPath, im.FileIDs, im.Note = hostPath, fileIDs, note
		}
	}
}

// refreshMappings rereads the memory map of the stopped process; mappings
// that did not change keep their identity and images.
func (lm *liveMemory) refreshMappings() error {
	p := lm.p
	fresh, err := readMaps(lm.pid)
	if err != nil {
		return liveErr(lm.pid, "cannot read its memory map", err)
	}
	type key struct {
		start, end, off uint64
		perm            Perm
		path            string
	}
	old := map[key]*Mapping{}
	for _, m := range p.Mappings {
		old[key{m.Start, m.End, m.Offset, m.Perm, m.Path}] = m
	}
	images := map[string]*Image{}
	for _, im := range p.Images {
		im.Mappings = im.Mappings[:0]
		if im.Path != "[vdso]" {
			images[im.Path] = im
		}
	}
	var ms []*Mapping
	newByPath := map[string][]*Mapping{}
	var newPaths []string
	for _, m := range fresh {
		if o := old[key{m.Start, m.End, m.Offset, m.Perm, m.Path}]; o != nil {
			m = o
		} else {
			m.Image = nil
		}
		ms = append(ms, m)
		if !m.FileBacked() {
			continue
		}
		if im := images[strings.TrimSuffix(m.Path, " (deleted)")]; im != nil {
			m.Image = im
			continue
		}
		if _, ok := newByPath[m.Path]; !ok {
			newPaths = append(newPaths, m.Path)
		}
		newByPath[m.Path] = append(newByPath[m.Path], m)
	}
	// The vDSO keeps its image; its mapping is matched by address.
	for _, im := range p.Images {
		if im.Path == "[vdso]" {
			for _, m := range ms {
				if m.Start == im.Base {
					m.Image, m.Path = im, "[vdso]"
				}
			}
		}
	}
	p.setLiveMappings(ms)
	for _, m := range p.Mappings {
		if m.Image != nil {
			m.Image.Mappings = append(m.Image.Mappings, m)
		}
	}
	kept := p.Images[:0]
	for _, im := range p.Images {
		if len(im.Mappings) > 0 || im == p.Exe {
			if len(im.Mappings) > 0 {
				im.Base, im.End = im.Mappings[0].Start, im.Mappings[len(im.Mappings)-1].End
			}
			kept = append(kept, im)
		}
	}
	p.Images = kept
	for _, path := range newPaths {
		if im := p.newFileImage(path, newByPath[path]); im != nil {
			p.Images = append(p.Images, im)
		}
	}
	return nil
}

func (lm *liveMemory) stop() error {
	lm.opMu.Lock()
	defer lm.opMu.Unlock()
	if lm.closed {
		return liveErr(lm.pid, "stop", errClosed)
	}
	if lm.stopped.Load() {
		return nil
	}
	lm.cancel.Store(false)
	if lm.tr == nil {
		tr, err := newTracer()
		if err != nil {
			return liveErr(lm.pid, "cannot start tracing", err)
		}
		lm.tr = tr
	}
	lm.mu.Lock()
	lm.stopStart, lm.stopEnd = time.Now(), time.Time{}
	lm.cache = map[uint64][]byte{}
	lm.mu.Unlock()
	err := lm.tr.do(lm.stopAll)
	if err == nil {
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
			lm.mu.Lock()
			lm.clock = ts.Nano()
			lm.mu.Unlock()
		}
		err = lm.tr.do(lm.readThreads)
	}
	if err == nil {
		lm.stopped.Store(true)
		err = lm.refreshMappings()
	}
	if err != nil {
		if derr := lm.detachLocked(); derr != nil {
			err = fmt.Errorf("%w (and detaching: %v)", err, derr)
		}
		return err
	}
	return nil
}

func (lm *liveMemory) detach() error {
	lm.cancel.Store(true)
	lm.opMu.Lock()
	defer lm.opMu.Unlock()
	return lm.detachLocked()
}

func (lm *liveMemory) detachLocked() error {
	if lm.tr == nil {
		return nil
	}
	err := lm.tr.do(lm.detachAll)
	// Ending the tracer thread makes the kernel detach anything an
	// orderly detach could not.
	lm.tr.close()
	lm.tr = nil
	lm.stopped.Store(false)
	lm.mu.Lock()
	if !lm.stopStart.IsZero() && lm.stopEnd.IsZero() {
		lm.stopEnd = time.Now()
	}
	lm.cache = nil
	lm.mu.Unlock()
	if err != nil {
		return liveErr(lm.pid, "detach", err)
	}
	return nil
}

var errStopInterrupted = errors.New("interrupted while stopping the process")

// maxStopRounds bounds the rounds of listing threads and stopping the new
// ones: a process that keeps creating threads faster than they are
// stopped cannot be snapshotted.
const maxStopRounds = 1000

// stopAll seizes and interrupts every thread, until a listing of the
// threads finds no new one. It runs on the tracer thread.
func (lm *liveMemory) stopAll() error {
	if lm.threads == nil {
		lm.threads = map[int]*tracee{}
	}
	deadline := time.Now().Add(lm.stopTimeout)
	for round := 0; ; round++ {
		if round == maxStopRounds {
			return liveErr(lm.pid, fmt.Sprintf("threads kept appearing after %d rounds of stopping them", round), nil)
		}
		tids, err := listTasks(lm.pid)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return liveErr(lm.pid, "stop", ErrProcessExited)
			}
			return liveErr(lm.pid, "cannot list its threads", err)
		}
		fresh := 0
		for _, tid := range tids {
			if _, ok := lm.threads[tid]; ok {
				continue
			}
			if err := ptrace(ptraceSeize, tid, 0, 0); err != nil {
				switch {
				case err == syscall.ESRCH:
					continue // exited since the listing
				case err == syscall.EPERM && taskState(lm.pid, tid) == 'Z':
					continue // an exited thread not yet reaped
				case err == syscall.EPERM:
					st, _ := readProcStatus(lm.pid, 0)
					return liveErr(lm.pid, "not permitted to trace it: "+whyNoPermission(lm.pid, st), nil)
				}
				return liveErr(lm.pid, fmt.Sprintf("PTRACE_SEIZE of thread %d", tid), err)
			}
			lm.threads[tid] = &tracee{tid: tid}
			fresh++
			// ESRCH: the thread is exiting; waitStopped reaps it.
			ptrace(ptraceInterrupt, tid, 0, 0)
		}
		if err := lm.waitStopped(deadline); err != nil {
			return err
		}
		if fresh == 0 {
			break
		}
	}
	for _, t := range lm.threads {
		if t.state == tsStopped {
			return nil
		}
	}
	return liveErr(lm.pid, "stop", ErrProcessExited)
}

// waitStopped collects stops until no seized thread is running.
func (lm *liveMemory) waitStopped(deadline time.Time) error {
	backoff := 20 * time.Microsecond
	for {
		running := 0
		for _, t := range lm.threads {
			if t.state == tsRunning {
				running++
			}
		}
		if running == 0 {
			return nil
		}
		if lm.cancel.Load() {
			return errStopInterrupted
		}
		if time.Now().After(deadline) {
			e := &stopTimeoutError{pid: lm.pid, timeout: lm.stopTimeout}
			for _, t := range lm.threads {
				if t.state == tsRunning {
					e.tids = append(e.tids, t.tid)
				}
			}
			sort.Ints(e.tids)
			return e
		}
		wpid, ws, err := wait4(-1, syscall.WNOHANG)
		switch {
		case err == syscall.ECHILD:
			// No tracee left to wait for: they all exited.
			for _, t := range lm.threads {
				if t.state == tsRunning {
					t.state = tsGone
				}
			}
			continue
		case err != nil:
			return liveErr(lm.pid, "wait", err)
		case wpid > 0:
			lm.noteStatus(wpid, ws)
			backoff = 20 * time.Microsecond
			continue
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Millisecond)
	}
}

// noteStatus records a wait status of a tracee.
func (lm *liveMemory) noteStatus(tid int, ws syscall.WaitStatus) {
	t := lm.threads[tid]
	if t == nil {
		return
	}
	switch {
	case ws.Exited() || ws.Signaled():
		t.state = tsGone
	case ws.Stopped():
		t.state = tsStopped
		if ptraceEvent(ws) == 0 {
			// A signal-delivery-stop: the signal is delivered on detach.
			t.sig = ws.StopSignal()
		}
	}
}

// readThreads reads the registers of every stopped thread.
func (lm *liveMemory) readThreads() error {
	p := lm.p
	var threads []*Thread
	buf := make([]byte, 8*regCount(p.Arch))
	for _, t := range lm.threads {
		if t.state != tsStopped {
			continue
		}
		regs, err := getRegSet(t.tid, NT_PRSTATUS, buf)
		if err == syscall.ESRCH {
			t.state = tsGone // killed while stopped
			continue
		}
		if err != nil {
			return liveErr(lm.pid, fmt.Sprintf("registers of thread %d", t.tid), err)
		}
		th := &Thread{TID: t.tid, Regs: &Registers{Arch: p.Arch, Values: make([]uint64, regCount(p.Arch))}, CurSig: Signal(t.sig), HasFP: true}
		for i := range th.Regs.Values {
			if 8*i+8 <= len(regs) {
				th.Regs.Values[i] = le.Uint64(regs[8*i:])
			}
		}
		switch p.Arch {
		case ArchAMD64:
			th.Regs.TP = th.Regs.Values[amd64FSBase]
		case ArchARM64:
			var tls [16]byte
			if b, err := getRegSet(t.tid, NT_ARM_TLS, tls[:]); err == nil && len(b) >= 8 {
				th.Regs.TP = le.Uint64(b)
			}
		}
		if st, err := readProcStatus(lm.pid, t.tid); err == nil {
			th.SigPend, th.SigHold = st.sigPnd|st.shdPnd, st.sigBlk
		}
		threads = append(threads, th)
	}
	if len(threads) == 0 {
		return liveErr(lm.pid, "stop", ErrProcessExited)
	}
	sortThreadsLeaderFirst(threads, lm.pid)
	p.Threads = threads
	return nil
}

// sortThreadsLeaderFirst orders threads by tid with the main thread first,
// as a debugger lists them.
func sortThreadsLeaderFirst(ts []*Thread, pid int) {
	sort.Slice(ts, func(i, j int) bool {
		if (ts[i].TID == pid) != (ts[j].TID == pid) {
			return ts[i].TID == pid
		}
		return ts[i].TID < ts[j].TID
	})
}

// detachAll detaches every seized thread, delivering the signals it
// intercepted. It runs on the tracer thread.
func (lm *liveMemory) detachAll() error {
	var first error
	tids := make([]int, 0, len(lm.threads))
	for tid := range lm.threads {
		tids = append(tids, tid)
	}
	sort.Ints(tids)
	for _, tid := range tids {
		t := lm.threads[tid]
		if t.state == tsRunning {
			// Seized and interrupted, but its stop was not collected:
			// PTRACE_DETACH needs a stopped tracee.
			lm.awaitStop(t, time.Second)
		}
		if t.state != tsStopped {
			continue
		}
		if err := ptrace(ptraceDetach, tid, 0, uintptr(t.sig)); err != nil && err != syscall.ESRCH && first == nil {
			first = fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	lm.threads = nil
	return first
}

func (lm *liveMemory) awaitStop(t *tracee, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for t.state == tsRunning && time.Now().Before(deadline) {
		wpid, ws, err := wait4(t.tid, syscall.WNOHANG)
		if err != nil {
			t.state = tsGone
			return
		}
		if wpid == t.tid {
			lm.noteStatus(t.tid, ws)
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Memory.

// kernelOnly reports mappings whose bytes the kernel does not let another
// process read through /proc/PID/mem.
func kernelOnly(m *Mapping) bool {
	switch m.Path {
	case "[vvar]", "[vvar_vclock]", "[vsyscall]":
		return true
	}
	return m.Start >= 1<<63
}

func (lm *liveMemory) readMapping(m *Mapping, b []byte, addr uint64) error {
	if m.Perm&PermRead == 0 {
		return &MemoryError{Addr: addr, Reason: NotDumped, Mapping: m, Detail: describeUndumped(m)}
	}
	if kernelOnly(m) {
		return &MemoryError{Addr: addr, Reason: ReadFailed, Mapping: m, Detail: "the kernel does not let other processes read " + m.Path}
	}
	if !lm.stopped.Load() {
		return lm.pread(m, b, addr)
	}
	for len(b) > 0 {
		pg := addr &^ (defaultPageSize - 1)
		data := lm.page(pg)
		if data == nil {
			return lm.pread(m, b, addr) // for the exact error
		}
		n := copy(b, data[addr-pg:])
		b, addr = b[n:], addr+uint64(n)
	}
	return nil
}

func (lm *liveMemory) readOwn(m *Mapping, b []byte, addr uint64) error {
	return lm.readMapping(m, b, addr)
}

// page returns the page at pg from the cache of the stopped process,
// reading it on first use; nil when it cannot be read whole.
func (lm *liveMemory) page(pg uint64) []byte {
	lm.mu.Lock()
	data, ok := lm.cache[pg]
	lm.mu.Unlock()
	if ok {
		return data
	}
	data = make([]byte, defaultPageSize)
	if n, _ := lm.mem.ReadAt(data, int64(pg)); n != len(data) {
		return nil
	}
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.cache == nil { // detached meanwhile
		return data
	}
	if len(lm.cache) >= maxCachedPages {
		clear(lm.cache)
	}
	lm.cache[pg] = data
	return data
}

func (lm *liveMemory) pread(m *Mapping, b []byte, addr uint64) error {
	n, err := lm.mem.ReadAt(b, int64(addr))
	if n == len(b) {
		return nil
	}
	detail := "the kernel returned no data"
	if err != nil && n == 0 {
		detail = err.Error()
	}
	if pe, ok := err.(*os.PathError); ok {
		detail = pe.Err.Error()
	}
	return &MemoryError{Addr: addr + uint64(n), Reason: ReadFailed, Mapping: m, Detail: detail}
}

func (lm *liveMemory) servable(m *Mapping, from, to uint64) bool {
	return m.Perm&PermRead != 0 && !kernelOnly(m)
}

var errClosed = errors.New("the process was closed")

func (lm *liveMemory) close() error {
	lm.cancel.Store(true)
	lm.opMu.Lock()
	lm.closed = true
	err := lm.detachLocked()
	lm.opMu.Unlock()
	if cerr := lm.mem.Close(); err == nil {
		err = cerr
	}
	lm.mu.Lock()
	if lm.pagemap != nil {
		lm.pagemap.Close()
		lm.pagemap = nil
	}
	lm.mu.Unlock()
	return err
}

// /proc readers.

// procStatus holds the fields of /proc/PID/status the live code uses.
type procStatus struct {
	name                                   string
	state                                  byte
	tgid, ppid, tracerPID                  int
	uid, gid                               uint32
	kthread                                bool
	sigPnd, shdPnd, sigBlk, sigIgn, sigCgt uint64
}

// procFile names a file of /proc/PID, or of /proc/PID/task/TID when tid
// is not 0.
func procFile(pid, tid int, name string) string {
	if tid != 0 {
		return fmt.Sprintf("/proc/%d/task/%d/%s", pid, tid, name)
	}
	return fmt.Sprintf("/proc/%d/%s", pid, name)
}

func readProcStatus(pid, tid int) (procStatus, error) {
	var st procStatus
	b, err := os.ReadFile(procFile(pid, tid, "status"))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		hex := func() uint64 { x, _ := strconv.ParseUint(v, 16, 64); return x }
		num := func() int { x, _ := strconv.Atoi(strings.Fields(v + " 0")[0]); return x }
		switch k {
		case "Name":
			st.name = v
		case "State":
			if v != "" {
				st.state = v[0]
			}
		case "Tgid":
			st.tgid = num()
		case "PPid":
			st.ppid = num()
		case "TracerPid":
			st.tracerPID = num()
		case "Uid":
			st.uid = uint32(num())
		case "Gid":
			st.gid = uint32(num())
		case "Kthread":
			st.kthread = v == "1"
		case "SigPnd":
			st.sigPnd = hex()
		case "ShdPnd":
			st.shdPnd = hex()
		case "SigBlk":
			st.sigBlk = hex()
		case "SigIgn":
			st.sigIgn = hex()
		case "SigCgt":
			st.sigCgt = hex()
		}
	}
	return st, nil
}

// taskState is the state letter of one thread ('R', 'S', 'D', 't', 'Z',
// ...), 0 when it cannot be read.
func taskState(pid, tid int) byte { return readProcStat(pid, tid).state }

// procStat holds the fields of /proc/PID/stat the live code uses.
type procStat struct {
	state            byte // 'R', 'S', 'D', 't', 'Z', ...; 0 when unreadable
	pgrp, sid        int
	flags            uint64
	nice             int8
	utimeUs, stimeUs int64
}

// clockTicks is USER_HZ, the unit of times in /proc/PID/stat; Linux fixes
// it at 100 for user space on every architecture.
const clockTicks = 100

func readProcStat(pid, tid int) procStat {
	var st procStat
	b, err := os.ReadFile(procFile(pid, tid, "stat"))
	if err != nil {
		return st
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st
	}
	// Fields after the command: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime cutime cstime priority nice
	f := strings.Fields(string(b[i+1:]))
	if len(f) > 0 {
		st.state = f[0][0]
	}
	num := func(k int) int64 {
		if k < len(f) {
			v, _ := strconv.ParseInt(f[k], 10, 64)
			return v
		}
		return 0
	}
	st.pgrp, st.sid = int(num(2)), int(num(3))
	st.flags = uint64(num(6))
	st.utimeUs, st.stimeUs = num(11)*1e6/clockTicks, num(12)*1e6/clockTicks
	st.nice = int8(num(16))
	return st
}

// describeTask says what a thread is doing, for errors about it.
func describeTask(pid, tid int) string {
	s := fmt.Sprintf("thread %d", tid)
	if st := taskState(pid, tid); st != 0 {
		s += fmt.Sprintf(" in state %c", st)
		if st == 'D' {
			s += " (uninterruptible sleep, usually I/O)"
		}
	}
	if w, err := os.ReadFile(procFile(pid, tid, "wchan")); err == nil && len(w) > 0 && string(w) != "0" {
		s += " waiting in " + string(w)
	}
	return s
}

func listTasks(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// whyNoPermission explains an EPERM from ptrace or /proc/PID/mem.
func whyNoPermission(pid int, st procStatus) string {
	if st.tracerPID != 0 {
		who := fmt.Sprintf("PID %d", st.tracerPID)
		if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", st.tracerPID)); err == nil {
			who += " (" + strings.TrimSpace(string(c)) + ")"
		}
		return "it is already being traced by " + who + "; detach that debugger first"
	}
	if euid := os.Geteuid(); euid != 0 && uint32(euid) != st.uid {
		return fmt.Sprintf("it runs as uid %d and coreexplain as uid %d; run coreexplain as that user or as root", st.uid, euid)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		switch strings.TrimSpace(string(b)) {
		case "1":
			return "kernel.yama.ptrace_scope=1 lets a process trace only its own descendants; run coreexplain as root (or with CAP_SYS_PTRACE), or set kernel.yama.ptrace_scope=0"
		case "2":
			return "kernel.yama.ptrace_scope=2 allows tracing only with CAP_SYS_PTRACE; run coreexplain as root"
		case "3":
			return "kernel.yama.ptrace_scope=3 forbids tracing altogether (until reboot)"
		}
	}
	return "permission denied (a setuid or non-dumpable process, or a security module forbids it)"
}

// sameRoot reports whether pid sees the same root directory as we do.
func sameRoot(pid int) bool {
	var a, b syscall.Stat_t
	if syscall.Stat("/", &a) != nil || syscall.Stat(fmt.Sprintf("/proc/%d/root", pid), &b) != nil {
		return true
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func splitCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	var out []string
	for _, a := range bytes.Split(b, []byte{0}) {
		out = append(out, string(a))
	}
	return out
}

// readMaps parses /proc/PID/maps.
func readMaps(pid int) ([]*Mapping, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []*Mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m, err := parseMapsLine(sc.Text())
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, sc.Err()
}

// parseMapsLine parses one line of /proc/PID/maps:
//
//	7f3a1c000000-7f3a1c021000 r-xp 00000000 08:01 1234   /usr/lib/libc.so.6
func parseMapsLine(line string) (*Mapping, error) {
	rest := line
	field := func() string {
		rest = strings.TrimLeft(rest, " ")
		f, r, _ := strings.Cut(rest, " ")
		rest = r
		return f
	}
	rng, perms, off := field(), field(), field()
	field() // device
	field() // inode
	lo, hi, ok := strings.Cut(rng, "-")
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	offset, err3 := strconv.ParseUint(off, 16, 64)
	if !ok || err1 != nil || err2 != nil || err3 != nil || len(perms) < 3 || end < start {
		return nil, fmt.Errorf("malformed maps line %q", line)
	}
	m := &Mapping{Start: start, End: end, Path: strings.TrimLeft(rest, " ")}
	if perms[0] == 'r' {
		m.Perm |= PermRead
	}
	if perms[1] == 'w' {
		m.Perm |= PermWrite
	}
	if perms[2] == 'x' {
		m.Perm |= PermExec
	}
	if m.Path != "" && m.Path[0] == '/' {
		m.Offset = offset
	}
	if m.Perm&PermRead != 0 && !kernelOnly(m) {
		// Everything the process can read, we can read: in the terms of
		// a core, all of it is present.
		m.Dumped = m.Size()
	}
	return m, nil
}
