//go:build !linux

package coredump

import (
	"errors"
	"fmt"
	"os"
)

var errNoMemoryFile = errors.New("anonymous memory files need Linux (memfd_create)")

// memoryFile is Linux's memfd_create(2); elsewhere the copy goes to an
// unlinked file from the start.
func memoryFile(name string) (*os.File, error) { return nil, errNoMemoryFile }

func unnamedFile(dir string) (*os.File, error) { return createUnlinked(dir) }

// fdPath opens the file of f anew, named or not: darwin's and the BSDs'
// fdesc file system (fd(4)).
func fdPath(f *os.File) string { return fmt.Sprintf("/dev/fd/%d", f.Fd()) }

// availableMemory is not needed where no copy lives in memory.
func availableMemory() (int64, bool) { return 0, false }
