package coredump

// Progress is told how far a long walk over the target has got: task names
// the walk ("goroutines", "heap spans"), done counts the items handled so
// far and total is their number, 0 when not known in advance. A walk calls
// it with done == total when it finishes. Layers call it through
// Process.Progress; the CLI shows it on a terminal.
type Progress func(task string, done, total int)

// SetProgress installs f to receive the progress of long walks over p
// (nil removes it).
func (p *Process) SetProgress(f Progress) { p.progress = f }

// Progress reports how far a long walk over p has got; it does nothing
// unless SetProgress installed a receiver. Callers report every item or
// every few thousand: the receiver decides how often to show it.
func (p *Process) Progress(task string, done, total int) {
	if p.progress != nil {
		p.progress(task, done, total)
	}
}
