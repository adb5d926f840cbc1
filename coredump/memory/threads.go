package memory

import (
	"debug/elf"
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
)

// threadStack is the stack mapping of one OS thread.
type threadStack struct {
	tid    int
	m      int64 // -1 when the thread runs no M
	lo, hi uint64
	sp     uint64 // the thread's SP when it lies in [lo, hi), else 0
	main   bool
}

func (t *threadStack) info() *StackInfo {
	st := &StackInfo{Kind: NativeStack, TID: t.tid, Lo: coredump.Addr(t.lo), Hi: coredump.Addr(t.hi)}
	if t.m >= 0 {
		m := t.m
		st.M = &m
	}
	if t.sp != 0 {
		st.SP, st.SPSource = coredump.Addr(t.sp), fmt.Sprintf("thread %d's SP", t.tid)
	}
	return st
}

// tlsRange is the TLS area of one thread around its thread pointer.
type tlsRange struct {
	tid        int
	tp         uint64
	below      uint64 // static TLS bytes below tp
	above      uint64 // thread control block bytes from tp
	goMTLS     bool   // pure Go: tp-8 is &m.tls[0]
	approxNote string
}

// loadThreads finds each thread's stack mapping and TLS area.
func (s *Space) loadThreads() {
	s.thOnce.Do(func() {
		p := s.p
		s.loadGo()
		mOf := map[int]int64{}
		if s.gv != nil {
			mOf = s.gv.MOfThread
		}
		mainStack := uint64(0)
		if a, ok := p.Auxv.Lookup(coredump.AT_EXECFN); ok {
			mainStack = a
		}
		seen := map[*coredump.Mapping]bool{}
		add := func(t *coredump.Thread, m *coredump.Mapping, sp uint64) {
			if m == nil || seen[m] || m.Image != nil || m.Perm&coredump.PermWrite == 0 {
				return
			}
			if s.heap != nil && s.heap.Contains(m.Start) {
				return
			}
			seen[m] = true
			ts := threadStack{tid: t.TID, m: -1, lo: m.Start, hi: m.End, main: m.Contains(mainStack)}
			if id, ok := mOf[t.TID]; ok {
				ts.m = id
			}
			if m.Contains(sp) {
				ts.sp = sp
			}
			s.threads = append(s.threads, ts)
		}
		for _, t := range p.Threads {
			sp := t.Regs.SP()
			add(t, p.FindMapping(sp), sp)
		}
		// Threads interrupted on their signal stack: their own stack is
		// the g0 stack of their M (cgo), or the main stack.
		if s.gv != nil {
			for _, g := range s.gv.Stacks {
				if g.Kind == SystemStack && g.TID != 0 {
					if t := p.Thread(g.TID); t != nil {
						add(t, p.FindMapping(g.Lo), t.Regs.SP())
					}
				}
			}
		}
		if m := p.FindMapping(mainStack); m != nil && !seen[m] {
			if t := p.Thread(p.PID); t != nil {
				add(t, m, t.Regs.SP())
			}
		}
		s.tls = s.tlsRanges()
	})
}

// stackAt finds a stack outside the Go heap holding addr: a cgo g0 stack
// or a thread's stack mapping.
func (s *Space) stackAt(addr uint64) *StackInfo {
	s.loadThreads()
	if s.gv != nil {
		for i := range s.gv.Stacks {
			g := &s.gv.Stacks[i]
			if addr >= g.Lo && addr < g.Hi && !g.Dead {
				return g.info(addr)
			}
		}
	}
	for i := range s.threads {
		t := &s.threads[i]
		if addr >= t.lo && addr < t.hi {
			st := t.info()
			if t.sp != 0 {
				live := addr >= t.sp
				st.Live = &live
			}
			return st
		}
	}
	return nil
}

// guardOf returns the stack that the inaccessible mapping m guards: the
// stack mapping directly above it (glibc and musl put a PROT_NONE guard
// at the low end of each thread's stack).
func (s *Space) guardOf(m *coredump.Mapping) *StackInfo {
	above := s.p.FindMapping(m.End)
	if above == nil {
		return nil
	}
	st := s.stackAt(above.Start)
	if st == nil {
		return nil
	}
	st.Guard, st.Live = true, nil
	return st
}

// tlsRanges works out each thread's TLS area. On x86-64 and with glibc
// and musl the static TLS blocks lie just below the thread pointer and the
// thread control block (struct pthread) at it; a pure Go program points
// fs at its M's m.tls array instead.
func (s *Space) tlsRanges() []tlsRange {
	p := s.p
	var static uint64
	for _, im := range p.Images {
		f, err := im.ELF()
		if err != nil {
			continue
		}
		for _, ph := range f.Progs {
			if ph.Type == elf.PT_TLS {
				align := max(ph.Align, 1)
				static += (ph.Memsz + align - 1) / align * align
			}
		}
	}
	libc := p.ImageByName("libc.so") != nil || p.ImageByName("ld-musl") != nil || p.ImageByName("libc.musl") != nil
	var tcb uint64
	note := ""
	if im := p.ImageByName("libc.so.6"); im != nil {
		// glibc exports sizeof(struct pthread) for libthread_db.
		if sym, ok := im.LookupSymbol("_thread_db_sizeof_pthread"); ok {
			if v, err := p.ReadUint32(sym.Addr); err == nil && v > 0 && v < 1<<16 {
				tcb = uint64(v)
			}
		}
	}
	if tcb == 0 {
		tcb, note = 0x100, "thread control block size assumed"
	}
	var out []tlsRange
	for _, t := range p.Threads {
		tp := t.TP()
		if tp == 0 {
			continue
		}
		r := tlsRange{tid: t.TID, tp: tp, approxNote: note}
		switch {
		case static == 0 && !libc && s.bin != nil:
			r.goMTLS, r.below, r.above = true, 8, 48-8
		default:
			r.below, r.above = static, tcb
		}
		out = append(out, r)
	}
	return out
}

// inTLS reports whether addr lies in some thread's TLS area.
func (s *Space) inTLS(addr uint64) bool {
	var r Region
	s.annotateTLS(&r, addr)
	return r.TLS != nil
}

func (s *Space) annotateTLS(r *Region, addr uint64) {
	s.loadThreads()
	for _, t := range s.tls {
		if addr+t.below < t.tp || addr >= t.tp+t.above {
			continue
		}
		off := int64(addr - t.tp)
		info := &TLSInfo{TID: t.tid, TP: coredump.Addr(t.tp), Offset: off}
		switch {
		case t.goMTLS:
			info.What = fmt.Sprintf("m.tls slot %d of its M (fs_base%+d)", (off+8)/8, off)
		case off < 0:
			info.What = fmt.Sprintf("static TLS block, fs_base%+#x", off)
		default:
			info.What = fmt.Sprintf("thread control block (struct pthread), fs_base+%#x", off)
		}
		info.goM = t.goMTLS
		r.TLS = info
		return
	}
}
