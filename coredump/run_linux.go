package coredump

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Run runs prog under ptrace until it ends. When it is about to die of a
// signal whose default action dumps core — a crash in C, or the SIGABRT the
// Go runtime raises after a fatal error with GOTRACEBACK=crash — every
// thread is stopped and a core is written into opts.CoreDir before the
// signal is let through, so no ulimit or core_pattern set-up is needed.
// Other signals reach the program as usual.
func Run(prog string, args []string, opts RunOptions) (*RunResult, error) {
	path, err := exec.LookPath(prog)
	if err != nil {
		return nil, err
	}
	if opts.CoreDir == "" {
		opts.CoreDir = filepath.Dir(path)
	}
	if abs, err := filepath.Abs(opts.CoreDir); err == nil {
		opts.CoreDir = abs
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = defaultStopTimeout
	}
	files := []*os.File{opts.Stdin, opts.Stdout, opts.Stderr}
	for i, std := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if files[i] == nil {
			files[i] = std
		}
	}
	tr, err := newTracer()
	if err != nil {
		return nil, err
	}
	defer tr.close()
	r := &runner{tr: tr, path: path, opts: opts, threads: map[int]*tracee{}}
	err = tr.do(func() error {
		// The child asks to be traced (PTRACE_TRACEME) and stops with
		// SIGTRAP once execve succeeded; the thread that forks is the
		// tracer, hence the tracer thread.
		proc, err := os.StartProcess(path, append([]string{prog}, args...), &os.ProcAttr{
			Dir: opts.Dir, Env: opts.Env, Files: files, Sys: &syscall.SysProcAttr{Ptrace: true}})
		if err != nil {
			return err
		}
		r.pid = proc.Pid
		proc.Release() // it is reaped by wait4 on this thread
		_, ws, err := wait4(r.pid, 0)
		if err != nil {
			return err
		}
		if !ws.Stopped() {
			return fmt.Errorf("%s ended before it started: %v", prog, ws)
		}
		r.threads[r.pid] = &tracee{tid: r.pid}
		if err := ptrace(ptraceSetOptions, r.pid, 0, ptraceOTraceClone|ptraceOTraceExec); err != nil {
			syscall.Kill(r.pid, syscall.SIGKILL)
			return fmt.Errorf("PTRACE_SETOPTIONS: %w", err)
		}
		return ptrace(ptraceCont, r.pid, 0, 0)
	})
	if err != nil {
		return nil, err
	}
	if opts.Started != nil {
		opts.Started(r.pid)
	}
	done := make(chan struct{})
	defer close(done)
	if opts.Signals != nil {
		go func() {
			for {
				select {
				case sig := <-opts.Signals:
					if s, ok := sig.(syscall.Signal); ok {
						syscall.Kill(r.pid, s)
					}
				case <-done:
					return
				}
			}
		}()
	}
	res := &RunResult{PID: r.pid}
	r.res = res
	if err := tr.do(r.loop); err != nil {
		return res, err
	}
	return res, nil
}

// runner is the state of one Run; it lives on the tracer thread.
type runner struct {
	tr      *tracer
	path    string
	pid     int
	opts    RunOptions
	threads map[int]*tracee
	res     *RunResult
}

// loop follows the program until its main thread is reaped.
func (r *runner) loop() error {
	for {
		wpid, ws, err := wait4(-1, 0)
		if err == syscall.ECHILD {
			return fmt.Errorf("PID %d: lost track of the process", r.pid)
		}
		if err != nil {
			return err
		}
		t := r.threads[wpid]
		if t == nil {
			// A new thread may report its first stop before its creator
			// reports the clone.
			t = &tracee{tid: wpid, fresh: true}
			r.threads[wpid] = t
		}
		switch {
		case ws.Exited() || ws.Signaled():
			delete(r.threads, wpid)
			if wpid == r.pid {
				if ws.Signaled() {
					r.res.Signal = Signal(ws.Signal())
				} else {
					r.res.ExitCode = ws.ExitStatus()
				}
				return nil
			}
		case ws.Stopped():
			r.stopped(t, ws)
		}
	}
}

// stopped handles one stop of a thread and resumes it.
func (r *runner) stopped(t *tracee, ws syscall.WaitStatus) {
	sig := ws.StopSignal()
	deliver := syscall.Signal(0)
	switch ev := ptraceEvent(ws); {
	case ev == ptraceEventClone:
		if tid, err := getEventMsg(t.tid); err == nil && r.threads[int(tid)] == nil {
			r.threads[int(tid)] = &tracee{tid: int(tid), fresh: true}
		}
	case ev == ptraceEventExec:
		// execve replaced the program; its other threads are gone.
		r.threads = map[int]*tracee{r.pid: {tid: r.pid}}
	case ev != 0:
	case sig == syscall.SIGSTOP && t.fresh:
		t.fresh = false // a new thread's initial stop
	default:
		t.fresh = false
		if _, err := getSigInfo(t.tid); err == syscall.EINVAL {
			// A group-stop (SIGSTOP, SIGTSTP...): a traced program
			// cannot be resumed by SIGCONT, so it is let go on at once.
			break
		}
		if r.fatal(sig) {
			r.capture(t, sig)
		}
		deliver = sig
	}
	if err := ptrace(ptraceCont, t.tid, 0, uintptr(deliver)); err == syscall.ESRCH {
		t.state = tsGone
	}
}

// fatal reports whether sig kills the program now: neither caught nor
// ignored, with a default action that dumps core (or terminates, with
// AllSignals).
func (r *runner) fatal(sig syscall.Signal) bool {
	st, err := readProcStatus(r.pid, 0)
	if err != nil || sig < 1 || sig > 64 {
		return false
	}
	bit := uint64(1) << (sig - 1)
	if st.sigCgt&bit != 0 || st.sigIgn&bit != 0 {
		return false
	}
	switch sig {
	case syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGABRT, syscall.SIGBUS,
		syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGSYS:
		return true
	case syscall.SIGCHLD, syscall.SIGCONT, syscall.SIGURG, syscall.SIGWINCH,
		syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
		return false
	}
	return r.opts.AllSignals
}

// capture stops every other thread and writes the core while the thread
// that took the fatal signal is held in its signal-delivery-stop.
func (r *runner) capture(t *tracee, sig syscall.Signal) {
	start := time.Now()
	defer func() { r.res.Frozen = time.Since(start) }()
	raw, err := getSigInfo(t.tid)
	if err == nil {
		r.res.SigInfo, _ = decodeSigInfo(raw)
	}
	t.state, t.sig = tsStopped, sig
	if err := r.stopOthers(t); err != nil {
		r.res.CoreErr = err
		return
	}
	si, derr := decodeSigInfo(raw)
	if derr != nil {
		si, raw = &SigInfo{Signo: Signal(sig)}, nil
	}
	core, stats, err := r.writeCore(t, si, raw)
	r.res.Core, r.res.Stats, r.res.CoreErr = core, stats, err
}

// stopOthers stops every thread but t with SIGSTOP and waits for them; a
// program traced with PTRACE_TRACEME cannot be PTRACE_INTERRUPTed.
func (r *runner) stopOthers(t *tracee) error {
	for tid, o := range r.threads {
		if tid != t.tid {
			o.state = tsRunning
			if err := syscall.Tgkill(r.pid, tid, syscall.SIGSTOP); err == syscall.ESRCH {
				o.state = tsGone
			}
		}
	}
	deadline := time.Now().Add(r.opts.StopTimeout)
	for {
		running := 0
		for _, o := range r.threads {
			if o.state == tsRunning {
				running++
			}
		}
		if running == 0 {
			return nil
		}
		wpid, ws, err := wait4(-1, syscall.WNOHANG)
		if err != nil {
			return fmt.Errorf("stopping the threads: %w", err)
		}
		if wpid == 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("PID %d: %d thread(s) did not stop within %s", r.pid, running, r.opts.StopTimeout)
			}
			time.Sleep(50 * time.Microsecond)
			continue
		}
		o := r.threads[wpid]
		if o == nil {
			o = &tracee{tid: wpid}
			r.threads[wpid] = o
		}
		switch {
		case ws.Exited() || ws.Signaled():
			o.state = tsGone
		case ws.Stopped() && ptraceEvent(ws) == ptraceEventClone:
			// A thread being created: stop it too, then this one again.
			if tid, err := getEventMsg(wpid); err == nil && r.threads[int(tid)] == nil {
				r.threads[int(tid)] = &tracee{tid: int(tid), fresh: true}
			}
			ptrace(ptraceCont, wpid, 0, 0)
		case ws.Stopped():
			o.state = tsStopped
			if s := ws.StopSignal(); ptraceEvent(ws) == 0 && s != syscall.SIGSTOP {
				o.sig = s
			}
		}
	}
}

// writeCore snapshots the held process and writes its core.
func (r *runner) writeCore(t *tracee, si *SigInfo, rawSigInfo []byte) (string, *CoreStats, error) {
	st, err := readProcStatus(r.pid, 0)
	if err != nil {
		return "", nil, err
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", r.pid))
	if err != nil {
		return "", nil, err
	}
	lm := &liveMemory{pid: r.pid, mem: mem, status: st, tr: r.tr, threads: r.threads, stopTimeout: r.opts.StopTimeout}
	lm.stopped.Store(true)
	p := &Process{Arch: hostArch(), PID: r.pid, PPID: st.ppid, UID: st.uid, Command: st.name, src: lm}
	lm.p = p
	defer func() {
		// The process must not be detached: it is about to die of the
		// signal it is held for.
		lm.tr, lm.threads = nil, nil
		p.Close()
	}()
	if err := lm.open(LiveOptions{}, false); err != nil {
		return "", nil, err
	}
	if err := lm.readThreads(); err != nil {
		return "", nil, err
	}
	comm := strings.NewReplacer("/", "_", " ", "_").Replace(st.name)
	name := filepath.Join(r.opts.CoreDir, fmt.Sprintf("core.%s.%d", comm, r.pid))
	f, err := os.CreateTemp(r.opts.CoreDir, ".core.*")
	if err != nil {
		return "", nil, err
	}
	stats, err := p.WriteCore(f, CoreOptions{Signal: si, FirstTID: t.tid, rawSigInfo: rawSigInfo})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", nil, err
	}
	return name, stats, nil
}
