package libc

import (
	"fmt"
	"sort"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
)

// Thread is one thread's C runtime state.
type Thread struct {
	TID int
	TP  uint64 // thread pointer (fs_base, tpidr_el0)
	// TCB is the C library's thread control block; nil when the process
	// has no C library or the thread pointer is 0.
	TCB *TCB
	// TLS lists the static TLS block of each module with TLS.
	TLS []TLSBlock
	// Errno is the thread's errno as the executable's C library sees it;
	// Slots holds the slot of every implementation (Slots[0] == Errno
	// when both are set).
	Errno *ErrnoValue
	Slots []*ErrnoValue
	// Clobbered is set when the Go runtime's crash path ran on this
	// thread after the fault and overwrote errno.
	Clobbered *Clobber
	// Problems are facts about the TCB that only corruption explains.
	Problems []Problem
}

// Field is one field of a thread control block.
type Field struct {
	Name   string
	Offset int64 // from the thread pointer
	Addr   uint64
	Size   int
	Value  uint64
	Err    error
}

// TCB is a thread control block: glibc's tcbhead_t and struct pthread, or
// musl's struct pthread.
type TCB struct {
	Flavor Flavor
	Addr   uint64 // struct pthread
	Fields []Field
	Source string // where the offsets came from
}

// Get returns a field's value when it could be read.
func (t *TCB) Get(name string) (uint64, bool) {
	if t == nil {
		return 0, false
	}
	for _, f := range t.Fields {
		if f.Name == name && f.Err == nil {
			return f.Value, true
		}
	}
	return 0, false
}

// field returns a field by name.
func (t *TCB) field(name string) *Field {
	for i := range t.Fields {
		if t.Fields[i].Name == name {
			return &t.Fields[i]
		}
	}
	return nil
}

// TLSBlock is one module's static TLS block in one thread.
type TLSBlock struct {
	Module string
	Image  *coredump.Image
	Start  uint64
	Size   uint64
	Source string
}

// Clobber says why a thread's errno is not the value it had at the fault.
type Clobber struct {
	Frame Frame // the crash-path frame found on the thread's stack
	Why   string
}

// Problem is one piece of corruption evidence.
type Problem struct {
	What  string
	Addr  uint64
	Value string
}

// Go runtime functions that call sigaction through libc (setsig →
// x_cgo_sigaction) and then raise: errno on a thread running them was
// overwritten after the fault (runtime/signal_unix.go dieFromSignal,
// raisebadsignal; runtime/cgo/gcc_sigaction.c).
var crashPathFuncs = []string{"runtime.dieFromSignal", "runtime.raisebadsignal"}

func (r *Runtime) readThreads() {
	prim := r.primaryImpl()
	for _, t := range r.Proc.Threads {
		th := &Thread{TID: t.TID, TP: t.TP()}
		if th.TP != 0 {
			th.TCB = r.readTCB(t)
			th.TLS = r.tlsBlocks(t)
			r.readErrno(th, prim)
		}
		r.checkTCB(th)
		r.checkCrashPath(th)
		r.Threads = append(r.Threads, th)
	}
	r.validateLayoutFields()
	r.checkThreadMappings()
	r.compareGuards()
}

func (r *Runtime) readFields(tp, base uint64, defs []fieldDef) []Field {
	out := make([]Field, 0, len(defs))
	for _, d := range defs {
		f := Field{Name: d.name, Addr: base + uint64(d.off), Size: d.size}
		f.Offset = int64(f.Addr - tp)
		var b [8]byte
		if _, err := r.Proc.ReadMemory(b[:d.size], f.Addr); err != nil {
			f.Err = err
		} else {
			f.Value = le.Uint64(b[:])
		}
		out = append(out, f)
	}
	return out
}

// readTCB reads the thread control block at the thread pointer.
func (r *Runtime) readTCB(t *coredump.Thread) *TCB {
	tp := t.TP()
	switch {
	case r.Flavor == Glibc && r.glibc != nil:
		l := r.glibc
		base := l.pthreadAddr(r.Arch, tp)
		var defs []fieldDef
		if r.Arch == coredump.ArchAMD64 {
			defs = append(defs, fieldDef{"self", 0, 8}, fieldDef{"dtv", l.dtv, 8},
				fieldDef{"header.self", l.headerSelf, 8}, fieldDef{"stack_guard", l.stackGuard, 8},
				fieldDef{"pointer_guard", l.pointerGuard, 8})
		}
		defs = append(defs, fieldDef{"tid", l.tid, 4})
		if l.stackBlock >= 0 {
			defs = append(defs, fieldDef{"stackblock", l.stackBlock, 8}, fieldDef{"stackblock_size", l.stackBlock + 8, 8})
		}
		fields := r.readFields(tp, base, defs)
		// The initial thread runs on the process stack: glibc leaves its
		// stackblock 0, and stackblock_size then means nothing.
		for i, f := range fields {
			if f.Name == "stackblock" && f.Err == nil && f.Value == 0 && i+1 < len(fields) {
				fields = append(fields[:i+1], fields[i+2:]...)
				break
			}
		}
		if r.Arch == coredump.ArchARM64 {
			// tcbhead_t {dtv, private} sits at the thread pointer.
			fields = append(r.readFields(tp, tp, []fieldDef{{"dtv", 0, 8}}), fields...)
		}
		return &TCB{Flavor: Glibc, Addr: base, Fields: fields, Source: l.source}
	case r.Flavor == Musl && r.musl != nil && r.musl.variant != nil:
		base := tp + uint64(r.musl.base)
		return &TCB{Flavor: Musl, Addr: base, Fields: r.readFields(tp, base, r.musl.variant.fields), Source: r.musl.source}
	}
	return nil
}

// tlsBlocks lists the thread's static TLS blocks: every loaded module's
// from its link_map, or a static executable's own.
func (r *Runtime) tlsBlocks(t *coredump.Thread) []TLSBlock {
	tp := t.TP()
	var out []TLSBlock
	for _, m := range r.Modules {
		if !m.HasTLS || m.Image == nil {
			continue
		}
		size := uint64(0)
		if ei := r.elf(m.Image); ei.tls != nil {
			size = ei.tls.Memsz
		}
		start := tp + uint64(r.tlsOffset(m, 0))
		out = append(out, TLSBlock{Module: m.Image.Name(), Image: m.Image, Start: start, Size: size,
			Source: fmt.Sprintf("link_map l_tls_offset %#x", m.TLSOffset)})
	}
	if r.Linkage == Static && r.Proc.Exe != nil {
		ei := r.elf(r.Proc.Exe)
		if ph := ei.tls; ph != nil && ph.Memsz > 0 {
			align := max(ph.Align, 1)
			var start uint64
			var how string
			switch {
			case r.Arch == coredump.ArchARM64:
				// Variant I: the block follows the 16-byte TCB, aligned.
				start = tp + (16+align-1)&^(align-1)
				how = "variant I: after the 16-byte TCB"
			case r.Flavor == Musl:
				// musl aligns the block's end so that its image keeps
				// its alignment (ldso/dynlink.c, static_init_tls).
				size := ph.Memsz + (-ph.Memsz-ph.Vaddr)&(align-1)
				start, how = tp-size, fmt.Sprintf("variant II: tp - %#x", size)
			default:
				off := (ph.Memsz + align - 1) &^ (align - 1)
				start, how = tp-off, fmt.Sprintf("variant II: tp - roundup(%#x, %d)", ph.Memsz, align)
			}
			out = append(out, TLSBlock{Module: r.Proc.Exe.Name(), Image: r.Proc.Exe, Start: start, Size: ph.Memsz,
				Source: "PT_TLS of the static executable, " + how})
		}
	}
	return out
}

// readErrno computes the thread's errno slot with every implementation.
func (r *Runtime) readErrno(th *Thread, prim *ErrnoImpl) {
	for _, e := range r.Errno {
		if !e.OffsetKnown && e.Err != nil {
			continue
		}
		v := &ErrnoValue{Impl: e}
		if e.Kind == KindFallback {
			v.Addr = th.TP + uint64(e.Offset)
			v.Source = e.Source
		} else {
			res, err := r.emulate(e.Addr, th.TP)
			if err != nil {
				v.Err = fmt.Errorf("%s: %w", e, err)
				th.Slots = append(th.Slots, v)
				continue
			}
			v.Addr, v.Steps = res.value, res.steps
			v.Source = describeRun(e, res, th.TP, r.TPName())
		}
		if name, _, ok := r.TCBFieldAt(int64(v.Addr - th.TP)); ok {
			v.Overlaps = name
		}
		if x, err := r.Proc.ReadUint32(v.Addr); err != nil {
			v.Err = err
		} else {
			v.Value = Errno(int32(x))
		}
		th.Slots = append(th.Slots, v)
		if e == prim {
			th.Errno = v
		}
	}
	// The executable's slot first.
	sort.SliceStable(th.Slots, func(i, j int) bool { return th.Slots[i].Impl == prim && th.Slots[j].Impl != prim })
}

// describeRun writes one thread's computation: what each step read.
func describeRun(e *ErrnoImpl, res *emuResult, tp uint64, tpName string) string {
	var notes []string
	for _, s := range res.steps {
		if s.Note != "" {
			notes = append(notes, s.Note)
		}
	}
	s := fmt.Sprintf("%s: %s = %#x", e, tpName, tp)
	if len(notes) > 0 {
		s += "; " + strings.Join(notes, "; ")
	}
	return s + fmt.Sprintf(" → %#x", res.value)
}

// TCBFieldAt names the field of the C library's thread control block
// header at a thread-pointer offset, with the field's start: glibc's x86-64
// tcbhead_t (sysdeps/x86_64/nptl/tls.h), whose layout the compiler and
// glibc's own code assume.
func (r *Runtime) TCBFieldAt(off int64) (name string, start int64, ok bool) {
	if r.Flavor != Glibc || r.Arch != coredump.ArchAMD64 {
		return "", 0, false
	}
	fields := []struct {
		name     string
		off, end int64
	}{
		{"tcb (self)", 0, 8}, {"dtv", 8, 0x10}, {"self", 0x10, 0x18}, {"multiple_threads", 0x18, 0x1c},
		{"gscope_flag", 0x1c, 0x20}, {"sysinfo", 0x20, 0x28}, {"stack_guard", 0x28, 0x30}, {"pointer_guard", 0x30, 0x38},
	}
	for _, f := range fields {
		if off >= f.off && off < f.end {
			return f.name, f.off, true
		}
	}
	return "", 0, false
}

// checkTCB records what only corruption explains: a self pointer that is
// not the thread pointer, a tid that is not the thread's.
func (r *Runtime) checkTCB(th *Thread) {
	tcb := th.TCB
	if tcb == nil {
		return
	}
	if r.Arch == coredump.ArchAMD64 {
		for _, name := range []string{"self", "header.self"} {
			if v, ok := tcb.Get(name); ok && v != th.TP {
				f := tcb.field(name)
				th.Problems = append(th.Problems, Problem{
					What: fmt.Sprintf("TCB %s pointer (%%fs:%#x) is %#x, not the thread pointer %#x", name, f.Offset, v, th.TP),
					Addr: f.Addr, Value: fmt.Sprintf("%#x", v)})
			}
		}
	}
	if v, ok := tcb.Get("tid"); ok && int(int32(v)) != th.TID {
		f := tcb.field("tid")
		th.Problems = append(th.Problems, Problem{
			What: fmt.Sprintf("struct pthread tid is %d, but the kernel's NT_PRSTATUS says this thread is %d", int32(v), th.TID),
			Addr: f.Addr, Value: fmt.Sprint(int32(v))})
	}
}

// validateLayoutFields drops derived fields (glibc's stackblock, which no
// descriptor names; the fallback layout's tid) that no thread confirms,
// so a wrong guess is never shown as corruption.
func (r *Runtime) validateLayoutFields() {
	if r.Flavor != Glibc {
		return
	}
	confirm := func(name string, ok func(th *Thread, v uint64) bool) {
		seen, good := 0, 0
		for _, th := range r.Threads {
			if v, has := th.TCB.Get(name); has && !(name == "stackblock" && v == 0) {
				seen++
				if ok(th, v) {
					good++
				}
			}
		}
		if seen == 0 || good > 0 {
			return
		}
		r.note("glibc struct pthread field %s: no thread's value fits; the offset (%s) does not match this glibc, so it is not shown", name, r.glibc.source)
		for _, th := range r.Threads {
			if th.TCB == nil {
				continue
			}
			fs := th.TCB.Fields[:0]
			for _, f := range th.TCB.Fields {
				if f.Name != name && !(name == "stackblock" && f.Name == "stackblock_size") {
					fs = append(fs, f)
				}
			}
			th.TCB.Fields = fs
			ps := th.Problems[:0]
			for _, p := range th.Problems {
				if !strings.Contains(p.What, name) {
					ps = append(ps, p)
				}
			}
			th.Problems = ps
		}
	}
	confirm("tid", func(th *Thread, v uint64) bool { return int(int32(v)) == th.TID })
	confirm("stackblock", func(th *Thread, v uint64) bool {
		size, _ := th.TCB.Get("stackblock_size")
		return v != 0 && th.TP >= v && th.TP < v+size
	})
	// A glibc thread's TCB lies in its stack block (or the block is 0 for
	// the initial thread).
	for _, th := range r.Threads {
		v, ok := th.TCB.Get("stackblock")
		size, _ := th.TCB.Get("stackblock_size")
		if ok && v != 0 && (th.TP < v || th.TP >= v+size) {
			f := th.TCB.field("stackblock")
			th.Problems = append(th.Problems, Problem{
				What: fmt.Sprintf("struct pthread stackblock [%#x, %#x) does not hold the thread's own TCB at %#x", v, v+size, th.TP),
				Addr: f.Addr, Value: fmt.Sprintf("%#x", v)})
		}
	}
}

// checkThreadMappings checks that a musl thread's struct pthread lies in
// the mapping musl made for the thread (map_base, map_size; 0 for the
// initial thread).
func (r *Runtime) checkThreadMappings() {
	for _, th := range r.Threads {
		base, ok1 := th.TCB.Get("map_base")
		size, ok2 := th.TCB.Get("map_size")
		if !ok1 || !ok2 || base == 0 {
			continue
		}
		if th.TP < base || th.TP >= base+size {
			f := th.TCB.field("map_base")
			th.Problems = append(th.Problems, Problem{
				What: fmt.Sprintf("struct pthread map_base/map_size [%#x, %#x) does not hold the thread's own TCB at %#x", base, base+size, th.TP),
				Addr: f.Addr, Value: fmt.Sprintf("%#x", base)})
		}
	}
}

// compareGuards flags threads whose stack or pointer guard differs from
// the value the C library set: it copies both into every thread's TCB
// when it creates the thread. glibc derives them from the kernel's
// AT_RANDOM bytes (stack_guard: the first word with its low byte cleared;
// pointer_guard: the second word, elf/dl-osinfo.h), which checks even a
// single-threaded process; when AT_RANDOM no longer holds them (the Go
// runtime reuses those bytes), the value most threads share is the
// reference.
func (r *Runtime) compareGuards() {
	type ref struct {
		v   uint64
		how string
	}
	refs := map[string]ref{}
	if r.Flavor == Glibc && r.Arch == coredump.ArchAMD64 {
		if a, ok := r.Proc.Auxv.Lookup(coredump.AT_RANDOM); ok {
			var b [16]byte
			if _, err := r.Proc.ReadMemory(b[:], a); err == nil {
				sg, pg := le.Uint64(b[:])&^0xff, le.Uint64(b[8:])
				for _, th := range r.Threads {
					if v, ok := th.TCB.Get("stack_guard"); ok && v == sg {
						refs["stack_guard"] = ref{sg, fmt.Sprintf("glibc derived it from AT_RANDOM (%#x)", a)}
						refs["pointer_guard"] = ref{pg, fmt.Sprintf("glibc derived it from AT_RANDOM+8 (%#x)", a+8)}
						break
					}
				}
			}
		}
	}
	for _, name := range []string{"stack_guard", "pointer_guard", "canary"} {
		rf, ok := refs[name]
		if !ok {
			count := map[uint64]int{}
			for _, th := range r.Threads {
				if v, ok := th.TCB.Get(name); ok {
					count[v]++
				}
			}
			best := 0
			for v, n := range count {
				if n > best || (n == best && v < rf.v) {
					rf.v, best = v, n
				}
			}
			if len(count) < 2 || best < 2 {
				continue // nothing to compare with
			}
			rf.how = fmt.Sprintf("%d other threads hold it", best)
		}
		for _, th := range r.Threads {
			v, ok := th.TCB.Get(name)
			if !ok || v == rf.v {
				continue
			}
			f := th.TCB.field(name)
			th.Problems = append(th.Problems, Problem{
				What: fmt.Sprintf("%s at %s:%#x is %#x, not %#x (%s): this thread's TCB was overwritten",
					name, r.TPName(), f.Offset, v, rf.v, rf.how),
				Addr: f.Addr, Value: fmt.Sprintf("%#x", v)})
		}
	}
}

// checkCrashPath flags a thread whose stack shows the Go runtime's crash
// path: it called sigaction through libc after the fault, and that call
// sets errno.
func (r *Runtime) checkCrashPath(th *Thread) {
	if r.Flavor == None || th.Errno == nil {
		return
	}
	for _, f := range r.Stack(th.TID) {
		for _, name := range crashPathFuncs {
			if f.Func != name {
				continue
			}
			th.Clobbered = &Clobber{Frame: f, Why: fmt.Sprintf(
				"this thread runs %s (sp %#x): after the fault it reset the signal's handler with sigaction through libc (setsig → x_cgo_sigaction), whose sigaddset loop fails with EINVAL for the C library's reserved signals; errno now holds what that call left, not the value at the fault",
				name, f.SP)}
			return
		}
	}
}
