//go:build !linux

package main

import "golang.org/x/sys/unix"

// ioctlGetTermios is the request that reads a terminal's settings: the
// BSDs and darwin call it TIOCGETA (tty(4)).
const ioctlGetTermios = unix.TIOCGETA
