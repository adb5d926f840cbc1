// Package dlvext holds coreexplain's helpers for debuggers (see README.md):
// coreexplain.star for Delve and gdb/coreexplain.py for gdb. Files embeds
// them, so that `coreexplain dlv` and `coreexplain gdb` can write them out
// for a session without a checkout of the repository. The package's tests
// drive the real dlv, built from the pinned module, and the system's gdb
// on fixture cores and on a live fixture process.
package dlvext
