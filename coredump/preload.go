package coredump

// LoadStatic reads what questions about the process's code need and what
// does not change while it runs: every image's symbol table and call frame
// information. For a live process, call it before Stop, so that the time
// the process stays stopped is spent on its memory only.
func (p *Process) LoadStatic() {
	for _, im := range p.Images {
		if im.Status.Usable() {
			im.Symbols()
			im.cfiTable()
		}
	}
}

// Cached is Process.Cached for a value that belongs to one image, such as
// its parsed debug information: computed once per process, so a live
// process's can be computed before it is stopped.
func (im *Image) Cached(key any, f func() any) any {
	if im.proc == nil {
		return f()
	}
	return im.proc.Cached(imageKey{im, key}, f)
}

type imageKey struct {
	im  *Image
	key any
}
