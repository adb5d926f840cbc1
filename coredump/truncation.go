package coredump

import (
	"fmt"
	"sort"
)

// TruncationEffect is one answer a truncated core can no longer give in
// full: a thread whose stack is gone, an image whose data is gone, notes
// cut short.
type TruncationEffect struct {
	// TID is the thread concerned, 0 when the effect is not about one.
	TID int
	// Image is the path of the image concerned, "" when none.
	Image string
	// Bytes is how many bytes of the core the effect rests on are missing.
	Bytes uint64
	What  string
}

func (e TruncationEffect) String() string { return e.What }

// TruncationEffects lists what the core's truncation takes away, most
// important first: lost notes, then the threads whose stacks are gone (the
// crashing thread first), then images and anonymous memory that lost bytes.
// It returns nil for a complete core.
func (p *Process) TruncationEffects() []TruncationEffect {
	t := p.Truncation
	if t == nil {
		return nil
	}
	var out []TruncationEffect
	if t.NotesMissing {
		out = append(out, TruncationEffect{What: fmt.Sprintf(
			"the note segment is cut short: threads and process facts recorded after the cut are unknown (%d threads were read)", len(p.Threads))})
	}
	lost := func(addr uint64) *Mapping {
		m := p.FindMapping(addr)
		if m == nil || m.Missing == 0 {
			return nil
		}
		if off := addr - m.Start; off < m.Dumped-m.Missing || off >= m.Dumped {
			return nil
		}
		return m
	}
	for i, th := range p.Threads {
		if th.Regs == nil {
			continue
		}
		sp := th.Regs.SP()
		if m := lost(sp); m != nil {
			who := fmt.Sprintf("thread %d", th.TID)
			if i == 0 {
				who += " (the first thread, which took the signal)"
			}
			out = append(out, TruncationEffect{TID: th.TID, Bytes: m.Missing, What: fmt.Sprintf(
				"%s: its stack at sp %#x lies in the lost part of %s; its frames cannot be read", who, sp, m)})
		}
	}
	byImage := map[string]uint64{}
	var anon, anonMaps uint64
	for _, m := range t.Segments {
		switch {
		case m.Image != nil:
			byImage[m.Image.Path] += m.Missing
		default:
			anon += m.Missing
			anonMaps++
		}
	}
	var names []string
	for n := range byImage {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		what := fmt.Sprintf("%s: %d bytes of its written pages (data, GOT, relocated pointers) are lost; reads there fail", n, byImage[n])
		if n == "[vdso]" {
			what = fmt.Sprintf("[vdso]: %d bytes of the kernel's vDSO are lost; frames in it cannot be named or unwound", byImage[n])
		}
		out = append(out, TruncationEffect{Image: n, Bytes: byImage[n], What: what})
	}
	if anon > 0 {
		out = append(out, TruncationEffect{Bytes: anon, What: fmt.Sprintf(
			"%d bytes of anonymous memory in %d mappings (heap, thread stacks, Go arenas) are lost; objects there cannot be read", anon, anonMaps)})
	}
	return out
}
