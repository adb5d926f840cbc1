package main

import (
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

// createBeside creates the temporary file that out is written to before it
// is renamed into place (so that out is never a partial file), in out's
// directory so that the rename cannot cross file systems. Until release is
// called, SIGINT, SIGTERM or SIGHUP removes it: a deferred Remove does not
// run when a signal ends the process. With exit, the signal then ends
// coreexplain with 128 + its number, as a shell reports it; without, the
// caller has a handler of its own that ends the command (attach's, which
// must let the target run first) and the signal only removes the file.
// release removes the file unless it was renamed, and stops the guard.
func createBeside(out string, exit bool) (f *os.File, release func(), err error) {
	f, err = os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return nil, nil, err
	}
	name := f.Name()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case sig := <-sigc:
			os.Remove(name)
			if exit {
				os.Exit(128 + int(sig.(syscall.Signal)))
			}
		case <-stop:
		}
	}()
	release = func() {
		signal.Stop(sigc)
		close(stop)
		<-done
		os.Remove(name) // after a rename there is nothing by this name
	}
	return f, release, nil
}
