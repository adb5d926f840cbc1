//go:build !linux

package main

import "errors"

var errSessionOS = errors.New("coreexplain dlv and coreexplain gdb run on Linux only")

func lockSession(dir string) (func(), error) { return nil, errSessionOS }

func sessionHeld(dir string) bool { return true }

type procState byte

func stateOf(pid int) procState { return 0 }

func keepRunning(e *env, pid int, before procState) {}
