// Package dlvext holds coreexplain's helpers for debuggers (see README.md):
// delve/coreexplain.star for Delve, loaded through coreexplain.star, and
// gdb/coreexplain.py for gdb. The Go package itself only tests them: its
// tests drive the real dlv, built from the pinned module, and the system's
// gdb on fixture cores and on a live fixture process.
package dlvext
