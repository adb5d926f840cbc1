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
