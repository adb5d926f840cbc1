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
	if ft, err := ReadFuncTable(p); err == nil {
		r.Funcs = ft // a Go binary whose runtime layout is unknown
	}
	u := r.newUnwinder(true, nil, nil, max)
	u.regs = *coredump.NewDwarfRegs(t.Regs)
	u.trap = true
	u.run()
	return Stack{Frames: r.expand(u.out, nil), Err: u.err}
}

// SignalFault returns the original signal recorded on a stack: the
// kernel signal frame of the first signal the thread took, unless the Go
// runtime sent it to itself to die (its re-raised SIGABRT, its SIGQUIT
// relay). It also returns the index of the signal frame; nil and -1 when
// the stack holds none.
func SignalFault(p *coredump.Process, frames []Frame) (*Fault, int) {
	r := &Runtime{Proc: p}
	if ft, err := ReadFuncTable(p); err == nil {
		r.Funcs = ft
	}
	last := -1
	for i, f := range frames {
		if f.Kind == FrameSignal && f.Signal != nil {
			last = i
		}
	}
	if last < 0 || r.internalSignal(frames[last].Signal, frames[last+1:]) {
		return nil, -1
	}
	f := r.faultFromSigframe(frames[last].Signal, SourceSigframe)
	return &f, last
}

// PreSignal returns the index of the innermost frame of what a thread was
// doing before the signals on its stack arrived: past the outermost
// signal frame and the crash machinery after it (0 when the stack holds
// no signal frame).
func PreSignal(frames []Frame) int {
	last := -1
	for i, f := range frames {
		if f.Kind == FrameSignal {
			last = i
		}
	}
	if last < 0 {
		return 0
	}
	return storyStart(frames, last+1)
}
