package coredump

import (
	"os"
	"time"
)

// RunOptions control Run.
type RunOptions struct {
	Env []string // the program's environment; nil means ours
	Dir string   // its working directory; "" means ours
	// Stdin, Stdout and Stderr are the program's; nil means ours.
	Stdin, Stdout, Stderr *os.File
	// CoreDir is where the core is written; "" means the program's
	// directory.
	CoreDir string
	// AllSignals also captures deaths by signals whose default action
	// terminates without a core (SIGTERM, SIGINT, SIGHUP, SIGPIPE, ...).
	AllSignals bool
	// Signals are forwarded to the program as they arrive.
	Signals <-chan os.Signal
	// Started, when set, is called with the program's PID once it runs.
	Started func(pid int)
	// StopTimeout bounds how long the capture waits for the other threads
	// to stop; 0 means 5 s.
	StopTimeout time.Duration
}

// RunResult is how a program run under Run ended.
type RunResult struct {
	PID int
	// Signal is the signal that killed the program, 0 when it exited.
	Signal   Signal
	ExitCode int // its exit status when it exited
	// SigInfo is the fatal signal as the kernel delivered it, when it was
	// caught.
	SigInfo *SigInfo
	// Core is the core written at the fatal signal; "" when none was.
	Core  string
	Stats *CoreStats
	// CoreErr says why no core was written for a death by a signal.
	CoreErr error
	// Frozen is how long the dying process was held for the capture.
	Frozen time.Duration
}

// Status is the program's status as a shell reports it: the exit code, or
// 128 + the signal number.
func (r *RunResult) Status() int {
	if r.Signal != 0 {
		return 128 + int(r.Signal)
	}
	return r.ExitCode
}
