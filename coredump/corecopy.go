package coredump

import (
	"fmt"
	"io"
	"os"
	"strconv"
)

// coreCopy is the decompressed copy of a compressed core. It has no name
// in any directory from the moment it exists, so that no way of exiting
// (a signal, a panic, a pipe closed under us) can leave it behind: the
// kernel frees it with its last descriptor. It lives in memory when it
// fits (memfd_create(2) on Linux), else in an unnamed file in dir.
type coreCopy struct {
	f        *os.File
	dir      string // where the copy goes when memory cannot hold it
	inMemory bool
}

// memoryLimit, when set, caps the bytes a copy in memory may take. The
// tests set it ("0" keeps every copy out of memory), the built command's
// with -ldflags -X.
var memoryLimit string

// writeError is a failure to store the copy, as opposed to one decoding
// the stream.
type writeError struct {
	where string
	err   error
}

func (e *writeError) Error() string { return fmt.Sprintf("writing into %s: %v", e.where, e.err) }
func (e *writeError) Unwrap() error { return e.err }

func newCoreCopy(dir string) (*coreCopy, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if f, err := memoryFile("coreexplain-core"); err == nil {
		return &coreCopy{f: f, dir: dir, inMemory: true}, nil
	}
	f, err := unnamedFile(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot create a temporary file for the decompressed core in %s: %w", dir, err)
	}
	return &coreCopy{f: f, dir: dir}, nil
}

// where names the copy's storage in messages.
func (c *coreCopy) where() string {
	if c.inMemory {
		return "memory"
	}
	return c.dir
}

// path opens the copy for readers that take a path (Delve) while c is
// open.
func (c *coreCopy) path() string { return fdPath(c.f) }

func (c *coreCopy) close() error { return c.f.Close() }

// Write appends b to the copy. When memory refuses it (a memory cgroup at
// its limit), what was copied so far moves to a file and the copy goes on
// there.
func (c *coreCopy) Write(b []byte) (int, error) {
	n, err := c.f.Write(b)
	if err != nil && c.inMemory {
		if err := c.spill(); err != nil {
			return n, err
		}
		var m int
		m, err = c.f.Write(b[n:])
		n += m
	}
	if err != nil {
		return n, &writeError{where: c.where(), err: err}
	}
	return n, nil
}

// fit prepares the copy for need more bytes and returns how many more it
// may take, when that is known. A copy in memory may take half the memory
// available: the analysis needs memory of its own, and the kernel cannot
// drop a memfd's pages, only swap them (they count as shmem, proc(5)).
// Past that, or when memory cannot be measured, the copy moves to a file.
func (c *coreCopy) fit(need int64) (room int64, known bool, err error) {
	if c.inMemory {
		if avail, ok := c.availableMemory(); ok && need <= avail/2 {
			return avail / 2, true, nil
		}
		if err := c.spill(); err != nil {
			return 0, false, err
		}
	}
	free, ok := freeBytes(c.dir)
	return free - minFreeBytes, ok, nil
}

func (c *coreCopy) availableMemory() (int64, bool) {
	avail, ok := availableMemory()
	if memoryLimit != "" {
		limit, err := strconv.ParseInt(memoryLimit, 10, 64)
		if err != nil {
			return 0, false
		}
		return min(limit, avail), true
	}
	return avail, ok
}

// spill moves the copy from memory into an unnamed file in c.dir.
func (c *coreCopy) spill() error {
	f, err := unnamedFile(c.dir)
	if err != nil {
		return &writeError{where: c.dir, err: err}
	}
	if _, err := io.Copy(f, io.NewSectionReader(c.f, 0, 1<<62)); err != nil {
		f.Close()
		return &writeError{where: c.dir, err: err}
	}
	c.f.Close()
	c.f, c.inMemory = f, false
	return nil
}

// createUnlinked creates a file in dir and removes its name at once: an
// open file without a name stays readable and writable, and the system
// frees it when the last descriptor closes (unlink(2), on Linux and
// darwin alike).
func createUnlinked(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "coreexplain-core-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
