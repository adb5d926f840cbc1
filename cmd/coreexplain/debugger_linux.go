package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// lockSession holds an flock(2) on dir's lock file until the returned
// function runs or coreexplain exits, whichever comes first: the kernel
// drops the lock of a process that dies, so a held lock means a running
// session.
func lockSession(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the session directory %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// sessionHeld reports whether a running coreexplain holds dir's lock.
func sessionHeld(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == syscall.EWOULDBLOCK
}

// procState is a process's scheduling state letter from /proc/PID/stat
// (proc(5)), 0 when it cannot be read.
type procState byte

func stateOf(pid int) procState {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name in parentheses may hold spaces and parentheses:
	// the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return procState(b[i+2])
}

// keepRunning makes sure the live target pid runs on after the debugger
// left: a debugger that died while attached leaves the kernel to detach
// it, and a tracee in a group stop then stays stopped (ptrace(2)). A
// process that was not stopped before the session is sent SIGCONT.
func keepRunning(e *env, pid int, before procState) {
	after := stateOf(pid)
	if after == 0 || before == 'T' || before == 't' {
		return
	}
	if after == 'T' || after == 't' {
		syscall.Kill(pid, syscall.SIGCONT)
		fmt.Fprintf(e.stderr, "coreexplain: PID %d was left stopped by the debugger; sent it SIGCONT\n", pid)
	}
}

// inheritedPath is how a child process names the descriptor fd it
// inherited (proc(5): /proc/self/fd).
func inheritedPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }
