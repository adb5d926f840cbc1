package goruntime

import (
	"fmt"
	"strings"
)

// Panic is one entry of a goroutine's panic chain (runtime._panic).
type Panic struct {
	Addr uint64
	// Value is the argument of panic() with its dynamic type. When the
	// runtime has already replaced it by its text to print it
	// (preprintpanics turns errors and Stringers into strings), the
	// original is recovered from the gopanic frame that raised it; Printed
	// is then the string the runtime printed.
	Value   *Value
	Printed string
	// Recovered, Repanicked and Goexit are the runtime's flags.
	Recovered  bool
	Repanicked bool
	Goexit     bool
	// Original reports that Value is the argument as passed to panic,
	// recovered from the gopanic frame, rather than what _panic.arg holds.
	Original bool
	// Frame is the function that called panic (or the runtime helper that
	// did, e.g. runtime.goPanicIndex) — nil when unknown.
	Frame *Frame
}

// Message is the panic's line as the runtime prints it after "panic: ",
// with " [recovered]" and " [recovered, repanicked]" markers.
func (p *Panic) Message() string {
	s := p.Printed
	if s == "" && p.Value != nil {
		s = p.Value.Text
	}
	switch {
	case p.Recovered && p.Repanicked:
		s += " [recovered, repanicked]"
	case p.Recovered:
		s += " [recovered]"
	}
	return s
}

// maxPanics bounds a _panic chain walk.
const maxPanics = 64

// Panics reads goroutine g's panic chain, outermost (oldest) first, as
// the runtime prints it.
func (r *Runtime) Panics(g *G) ([]*Panic, error) {
	if g == nil || g.Panic == 0 {
		return nil, nil
	}
	frames := r.Stack(g, 0).Frames
	var chain []*Panic
	seen := map[uint64]bool{}
	o := &r.off
	buf := make([]byte, o.panicSize)
	for a := g.Panic; a != 0; {
		if len(chain) == maxPanics {
			return reverse(chain), fmt.Errorf("panic chain of goroutine %d longer than %d: corrupt", g.ID, maxPanics)
		}
		if seen[a] {
			return reverse(chain), fmt.Errorf("panic chain of goroutine %d loops at %#x", g.ID, a)
		}
		seen[a] = true
		if _, err := r.Proc.ReadMemory(buf, a); err != nil {
			return reverse(chain), fmt.Errorf("panic at %#x: %w", a, err)
		}
		p := &Panic{Addr: a}
		flag := func(off int64) bool { return off >= 0 && buf[off] != 0 }
		p.Recovered, p.Goexit, p.Repanicked = flag(o.panicRecovered), flag(o.panicGoexit), flag(o.panicRepanicked)
		typ, data := le64(buf[o.panicArg:]), le64(buf[o.panicArg+8:])
		p.Value = r.IfaceValue(typ, data)
		r.recoverOriginal(p, frames)
		p.Frame = panickingFrame(frames, a)
		chain = append(chain, p)
		a = le64(buf[o.panicLink:])
	}
	return reverse(chain), nil
}

func reverse(ps []*Panic) []*Panic {
	for i, j := 0, len(ps)-1; i < j; i, j = i+1, j-1 {
		ps[i], ps[j] = ps[j], ps[i]
	}
	return ps
}

// recoverOriginal finds the value passed to panic() when _panic.arg
// holds the string the runtime made of it for printing: gopanic(e any)
// spills e into its argument area, at the frame's CFA, and since Go 1.22
// the _panic record itself lives in that gopanic frame.
func (r *Runtime) recoverOriginal(p *Panic, frames []Frame) {
	if p.Value == nil || p.Value.Type != "string" {
		return
	}
	for _, f := range frames {
		if f.Func != "runtime.gopanic" || f.CFA == 0 {
			continue
		}
		inFrame := p.Addr >= f.SP && p.Addr < f.CFA
		typ, err1 := r.Proc.ReadUint64(f.CFA)
		data, err2 := r.Proc.ReadUint64(f.CFA + 8)
		if err1 != nil || err2 != nil || !r.types.valid(typ) || typ == p.Value.TypeAddr {
			continue
		}
		orig := r.IfaceValue(typ, data)
		switch {
		case orig.Text != "" && orig.Text == p.Value.Text:
			// The spilled argument renders to exactly what was printed.
		case inFrame && (orig.IsError || r.types.hasMethod(r.types.typeAt(typ), "String")):
			// The frame holds this very panic and the argument is an
			// error or Stringer: what was printed is its text.
			if orig.Text == "" {
				orig.Text = p.Value.Text
			}
		default:
			continue
		}
		p.Printed = p.Value.Text
		p.Value = orig
		p.Original = true
		return
	}
}

// panickingFrame is the frame below the gopanic that holds the panic at
// addr (or below the innermost gopanic): the function that called panic.
func panickingFrame(frames []Frame, addr uint64) *Frame {
	idx := -1
	for i, f := range frames {
		if f.Func == "runtime.gopanic" {
			if addr >= f.SP && addr < f.CFA {
				idx = i
				break
			}
			if idx < 0 {
				idx = i
			}
		}
	}
	if idx < 0 || idx+1 >= len(frames) {
		return nil
	}
	for k := idx + 1; k < len(frames); k++ {
		if !isRuntimeFunc(frames[k].Func) {
			f := frames[k]
			return &f
		}
	}
	f := frames[idx+1]
	return &f
}

// readPanics fills the crash's panic chain from the crashing goroutine.
func (r *Runtime) readPanics(c *Crash) {
	if c.G == nil || c.G.Panic == 0 {
		return
	}
	ps, err := r.Panics(c.G)
	if err != nil {
		r.note("%v", err)
	}
	var live []*Panic
	for _, p := range ps {
		if !p.Goexit {
			live = append(live, p)
		}
	}
	// A fatal signal in Go code still leaves a panic (sigpanic's) that
	// the runtime printed; a recovered-and-finished panic may linger
	// after a throw. Keep only chains that led to the crash path.
	if len(live) > 0 && !hasFunc(c.Frames, "runtime.gopanic") && !hasFunc(c.Frames, "runtime.fatalpanic") {
		return
	}
	c.Panics = live
}

func hasFunc(frames []Frame, name string) bool {
	for _, f := range frames {
		if f.Func == name {
			return true
		}
	}
	return false
}

// readFatal recovers the text of a fatal error from the throwing frame:
// runtime.throw and runtime.fatal print through a closure
// (throw.func1/fatal.func1) passed to systemstack, whose funcval — the
// code pointer followed by the string — sits in the throwing frame.
func (r *Runtime) readFatal(c *Crash) {
	for i, f := range c.Frames {
		if f.Func != "runtime.throw" && f.Func != "runtime.fatal" {
			continue
		}
		if s, ok := r.throwString(f); ok {
			c.Fatal = s
			for k := i + 1; k < len(c.Frames); k++ {
				fr := c.Frames[k]
				c.FatalFrame = &fr
				if !isRuntimeFunc(fr.Func) {
					break
				}
			}
			if i+1 < len(c.Frames) && c.FatalFrame != nil && isRuntimeFunc(c.FatalFrame.Func) {
				fr := c.Frames[i+1]
				c.FatalFrame = &fr
			}
			return
		}
	}
}

// throwString scans a throw/fatal frame for the closure carrying its
// string argument.
func (r *Runtime) throwString(f Frame) (string, bool) {
	if f.CFA <= f.SP || f.CFA-f.SP > 4096 {
		return "", false
	}
	var entries []uint64
	for _, name := range throwClosures {
		if fn, ok := r.Funcs.FuncByName(name); ok {
			entries = append(entries, fn.Entry)
		}
	}
	buf := make([]byte, f.CFA-f.SP+16)
	n, _ := r.Proc.ReadMemory(buf, f.SP) // search the readable part of the frame only
	buf = buf[:n]
	for off := 0; off+24 <= len(buf); off += 8 {
		w := le64(buf[off:])
		for _, e := range entries {
			if w != e {
				continue
			}
			// The captured variables follow the code pointer; the string
			// is one of the first few (fatal also captures the panic).
			for k := off + 8; k+16 <= len(buf) && k <= off+32; k += 8 {
				ptr, l := le64(buf[k:]), le64(buf[k+8:])
				if l == 0 || l > 4096 || ptr < 4096 {
					continue
				}
				s, err := r.readStringData(ptr, l)
				if err == nil && printable(s) {
					return s, true
				}
			}
		}
	}
	return "", false
}

func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 && c != '\n' && c != '\t' || c == 0xfffd {
			return false
		}
	}
	return strings.TrimSpace(s) != ""
}
