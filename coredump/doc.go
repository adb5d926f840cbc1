// Package coredump is the operating-system view of a dead or live Linux
// process: its threads and their registers, its address space and the files
// mapped into it, and the signal that ended it.
//
// A Process is opened from an ELF core file (Open) or from a live process
// (OpenLive, Attach; Linux only); everything above this package reads the
// process only through it, so the same analysis runs on both.
//
// Memory is served the way gdb serves it: bytes the kernel dumped come from
// the core; pages it did not dump but that a file backs (program text, shared
// library code) come from that file on disk, under Options.Sysroot when set,
// and only after the file's build-id matched the one recorded in the core. A
// read that cannot be served fails with a *MemoryError that says why.
package coredump
