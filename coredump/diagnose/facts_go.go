package diagnose

import (
	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

// Go returns the Go runtime's view of the process: threads, Ms,
// goroutines, stacks, the crash site, panics and fatal errors. It fails
// with goruntime.ErrNoRuntime for a process without a Go runtime. The
// view is shared with every other layer (goruntime.Load caches it on the
// process).
func (f *Facts) Go() (*goruntime.Runtime, error) { return goruntime.Load(f.Proc) }

// GoCrash returns the Go runtime's crash site, nil for a process without a
// Go runtime.
func (f *Facts) GoCrash() *goruntime.Crash {
	r, err := f.Go()
	if err != nil {
		return nil
	}
	c, err := r.Crash()
	if err != nil {
		f.Note("crash site: %v", err)
		return nil
	}
	return c
}
