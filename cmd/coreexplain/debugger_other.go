//go:build !linux

package main

import (
	"errors"
	"fmt"
)

var errSessionOS = errors.New("coreexplain dlv and coreexplain gdb run on Linux only")

func lockSession(dir string) (func(), error) { return nil, errSessionOS }

func sessionHeld(dir string) bool { return true }

type procState byte

func stateOf(pid int) procState { return 0 }

func keepRunning(e *env, pid int, before procState) {}

// inheritedPath is how a child process names the descriptor fd it
// inherited (fd(4) on darwin and the BSDs).
func inheritedPath(fd int) string { return fmt.Sprintf("/dev/fd/%d", fd) }
