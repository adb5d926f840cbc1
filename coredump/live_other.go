//go:build !linux

package coredump

import (
	"errors"
	"time"
)

// LiveOptions control how a live process is opened.
type LiveOptions struct {
	Sysroot     string
	StopTimeout time.Duration
}

var errLiveUnsupported = errors.New("live processes are supported on Linux only")

// ErrNotLive is returned by the live-process methods of a core.
var ErrNotLive = errors.New("not a live process")

// ErrProcessExited reports that the target exited while it was traced.
var ErrProcessExited = errors.New("the process exited")

// OpenLive is supported on Linux only.
func OpenLive(pid int, opts LiveOptions) (*Process, error) { return nil, errLiveUnsupported }

// Attach is supported on Linux only.
func Attach(pid int, opts LiveOptions) (*Process, error) { return nil, errLiveUnsupported }

// Stop is supported on Linux only.
func (p *Process) Stop() error { return ErrNotLive }

// Detach is supported on Linux only.
func (p *Process) Detach() error { return ErrNotLive }

// Stopped reports whether a live process is stopped now.
func (p *Process) Stopped() bool { return false }

// Frozen is how long a live process was stopped.
func (p *Process) Frozen() time.Duration { return 0 }

func (p *Process) coreContents(opts CoreOptions) (*coreContents, error) {
	return nil, errLiveUnsupported
}

// Clock is known for live processes only.
func (p *Process) Clock() (int64, bool) { return 0, false }
