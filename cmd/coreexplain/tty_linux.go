package main

import "golang.org/x/sys/unix"

// ioctlGetTermios is the request that reads a terminal's settings
// (ioctl_tty(2)).
const ioctlGetTermios = unix.TCGETS
