package goruntime

import "github.com/coreexplain/coreexplain/coredump"

// NativeStack unwinds a thread of a process without a Go runtime (a C
// program): CFI for every image, frame pointers where there is none, the
// kernel's signal frames through the C library's restorer. max bounds the
// frames (0: the default for threads).
func NativeStack(p *coredump.Process, t *coredump.Thread, max int) Stack {
	if max <= 0 {
		max = maxThreadFrames
	}
	r := &Runtime{Proc: p}
	u := r.newUnwinder(true, nil, nil, max)
	u.regs = *coredump.NewDwarfRegs(t.Regs)
	u.trap = true
	u.run()
	return Stack{Frames: r.expand(u.out, nil), Err: u.err}
}
