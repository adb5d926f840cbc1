package libc

import (
	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

// goFunc names a Go function: stripped binaries (-ldflags=-s -w) keep
// .gopclntab when .symtab is gone, and the crash-path frames this package
// looks for are Go functions. The Go runtime layer's pclntab reader
// answers, also for a binary whose runtime layout it does not know
// (goruntime.ReadFuncTable), and checks a hostile table before sizing
// anything from it.
func (r *Runtime) goFunc(im *coredump.Image, pc uint64) (name string, entry uint64, ok bool) {
	if im == nil || !im.IsExe {
		return "", 0, false
	}
	ft, err := goruntime.ReadFuncTable(r.Proc)
	if err != nil || ft == nil {
		return "", 0, false
	}
	f, ok := ft.FuncAt(pc)
	if !ok {
		return "", 0, false
	}
	return f.Name(), f.Entry, true
}
