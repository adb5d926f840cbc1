package goruntime

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
)

// ThreadState is what an OS thread was doing before the crash signals
// arrived.
type ThreadState uint8

const (
	StateUnknown   ThreadState = iota
	StateRunningGo             // running a goroutine's Go code
	StateInCgo                 // in C code called through cgo
	StateInSyscall             // in a system call made by Go code
	StateIdle                  // parked in the scheduler, or sysmon sleeping
	StateRuntime               // running runtime code on the system stack
	StateNonGo                 // a thread the Go runtime does not run (created by C)
)

var threadStateNames = [...]string{"unknown", "running-go", "in-cgo", "in-syscall", "idle", "runtime", "non-go"}

func (s ThreadState) String() string {
	if int(s) < len(threadStateNames) {
		return threadStateNames[s]
	}
	return fmt.Sprintf("ThreadState(%d)", uint8(s))
}

// MarshalText writes the state by name.
func (s ThreadState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Thread is one OS thread of the process joined with the runtime's view.
type Thread struct {
	TID int
	// TP is the thread pointer (fs_base).
	TP uint64
	// M is the runtime's M for the thread (procid == tid), nil for a
	// thread the runtime does not know.
	M *M
	// TLSSlot is the address of the runtime's g slot in the thread's TLS
	// and TLSG the g pointer read there (0 when unreadable or empty).
	TLSSlot, TLSG uint64
	// G is the g the TLS slot names: a goroutine, or the M's g0 or
	// gsignal.
	G *G
	// Goroutine is the goroutine the thread runs (m.curg), nil when none.
	Goroutine *G
	State     ThreadState
	// Stack is the thread's whole stack from its registers: signal
	// handlers and crash machinery first, then what the thread was doing.
	Stack Stack
	// Top is the index in Stack.Frames of the innermost frame of what the
	// thread was doing before the crash signals: past the outermost
	// signal frame and the crash machinery (len(Frames) when there is
	// none).
	Top int
	// Signals are the kernel signal frames on the stack, innermost first.
	Signals []*coredump.SignalFrame
	// Crashing marks the thread that crashed the process.
	Crashing bool
	// Notes are disagreements between the views (evidence of corruption)
	// and what could not be read.
	Notes []string

	Core *coredump.Thread

	phys []physFrame
}

// Function is the function the thread was in before the crash signals:
// the innermost frame with a name (a C library's local functions have
// none).
func (t *Thread) Function() string { return innermostName(t.PreSignalFrames()) }

// innermostName names the innermost frame that has a name, with its module
// outside the executable.
func innermostName(frames []Frame) string {
	for i, f := range frames {
		switch {
		case f.Func != "" && f.Module != "":
			return f.Module + "`" + f.Func
		case f.Func != "":
			return f.Func
		case i == 0 && f.Module != "":
			// An unnamed function of a library (a local symbol of a
			// stripped libc): where it is, rather than a caller's name.
			return fmt.Sprintf("%s+%#x", f.Module, f.ModuleOffset)
		}
	}
	return ""
}

// PreSignalFrames are the frames of what the thread was doing.
func (t *Thread) PreSignalFrames() []Frame {
	if t.Top < len(t.Stack.Frames) {
		return t.Stack.Frames[t.Top:]
	}
	return nil
}

// maxThreadFrames bounds a thread's unwound stack.
const maxThreadFrames = 512

// Threads returns every thread of the core, in the core's order, joined
// with the runtime's Ms and goroutines.
func (r *Runtime) Threads() []*Thread {
	r.threadsOnce.Do(r.buildThreads)
	return r.threads
}

// Thread returns the thread with the given tid.
func (r *Runtime) Thread(tid int) *Thread {
	for _, t := range r.Threads() {
		if t.TID == tid {
			return t
		}
	}
	return nil
}

func (r *Runtime) buildThreads() {
	tls := r.tlsSlot()
	byProc := map[uint64][]*M{}
	for _, m := range r.Ms {
		if m.ProcID != 0 {
			byProc[m.ProcID] = append(byProc[m.ProcID], m)
		}
	}
	for _, ct := range r.Proc.Threads {
		t := &Thread{TID: ct.TID, TP: ct.TP(), Core: ct}
		if tls.ok && t.TP != 0 {
			t.TLSSlot = uint64(int64(t.TP) + tls.off)
			if v, err := r.Proc.ReadUint64(t.TLSSlot); err == nil {
				t.TLSG = v
			} else {
				t.Notes = append(t.Notes, fmt.Sprintf("TLS g slot %#x unreadable: %v", t.TLSSlot, err))
			}
		}
		r.joinM(t, byProc[uint64(ct.TID)])
		r.unwindThread(t)
		r.threads = append(r.threads, t)
	}
	r.markCrashing()
}

// joinM finds the thread's M: the one whose procid is the tid, checked
// against the g in the TLS slot.
func (r *Runtime) joinM(t *Thread, cands []*M) {
	var tlsM *M
	if t.TLSG != 0 {
		t.G = r.gByAddr[t.TLSG]
		if t.G == nil {
			if g, err := r.readG(t.TLSG, nil, RoleGoroutine); err == nil && g.MAddr != 0 {
				t.G = g
			}
		}
		if t.G != nil {
			tlsM = r.mByAddr[t.G.MAddr]
			if tlsM == nil && t.G.MAddr != 0 {
				// An M not on allm (being created or freed): read it.
				if m, err := r.readM(t.G.MAddr, make([]byte, r.off.mSize)); err == nil {
					tlsM = m
				}
			}
		}
	}
	switch {
	case len(cands) == 1:
		t.M = cands[0]
	case len(cands) > 1:
		t.Notes = append(t.Notes, fmt.Sprintf("%d Ms claim tid %d", len(cands), t.TID))
		for _, m := range cands {
			if m == tlsM {
				t.M = m
			}
		}
		if t.M == nil {
			t.M = cands[0]
		}
	case tlsM != nil && tlsM.ProcID == 0:
		// A new M: minit sets procid after the TLS.
		t.M = tlsM
	}
	if t.M == nil && tlsM != nil {
		t.Notes = append(t.Notes, fmt.Sprintf("TLS g %#x belongs to M%d whose procid is %d, not this thread", t.TLSG, tlsM.ID, tlsM.ProcID))
	}
	if t.M == nil {
		return
	}
	m := t.M
	t.Goroutine = m.CurG()
	if t.G == nil && t.TLSG == 0 && t.TLSSlot != 0 && !m.ExtraInC {
		t.Notes = append(t.Notes, fmt.Sprintf("M%d owns the thread but its TLS g slot is empty", m.ID))
	}
	if t.G != nil {
		ok := t.G.Addr == m.CurGAddr || (m.G0 != nil && t.G.Addr == m.G0.Addr) || (m.Gsignal != nil && t.G.Addr == m.Gsignal.Addr)
		if !ok {
			t.Notes = append(t.Notes, fmt.Sprintf("TLS g %#x is none of M%d's g0, gsignal or curg: corrupt TLS or M", t.TLSG, m.ID))
		} else if t.G.MAddr != m.Addr {
			t.Notes = append(t.Notes, fmt.Sprintf("TLS g %#x points to m %#x, not M%d at %#x", t.TLSG, t.G.MAddr, m.ID, m.Addr))
		}
		if m.G0 != nil && t.G.Addr == m.G0.Addr {
			t.G = m.G0
		} else if m.Gsignal != nil && t.G.Addr == m.Gsignal.Addr {
			t.G = m.Gsignal
		}
	}
	if g := t.Goroutine; g != nil && g.MAddr != m.Addr {
		t.Notes = append(t.Notes, fmt.Sprintf("M%d's curg goroutine %d says it runs on m %#x", m.ID, g.ID, g.MAddr))
	}
}

// unwindThread unwinds the thread from its registers and decides what it
// was doing before the crash.
func (r *Runtime) unwindThread(t *Thread) {
	u := r.newUnwinder(true, t.M, nil, maxThreadFrames)
	u.regs = *coredump.NewDwarfRegs(t.Core.Regs)
	u.trap = true
	u.g = u.gForSP(u.regs.SP())
	if t.M == nil {
		u.g = nil
	}
	u.run()
	t.phys = u.out
	t.Stack = Stack{Frames: r.expand(u.out, nil), Err: u.err, Note: u.note}
	t.Top = 0
	for i, f := range t.Stack.Frames {
		if f.Kind == FrameSignal {
			if f.Signal != nil {
				t.Signals = append(t.Signals, f.Signal)
			}
			t.Top = i + 1
		}
	}
	if len(t.Signals) > 0 || hasCrashPath(t.Stack.Frames) {
		t.Top = storyStart(t.Stack.Frames, t.Top)
	}
	t.State = r.threadState(t)
}

// idleFuncs are where an M waits for work.
var idleFuncs = map[string]bool{
	"runtime.stopm": true, "runtime.notesleep": true, "runtime.notetsleep": true, "runtime.notetsleepg": true,
	"runtime.notetsleep_internal": true, "runtime.mPark": true, "runtime.futexsleep": true,
	"runtime.findRunnable": true, "runtime.findrunnable": true, "runtime.netpoll": true, "runtime.sysmon": true,
	"runtime.templateThread": true, "runtime.stoplockedm": true, "runtime.schedule": true, "runtime.gcstopm": true,
}

func (r *Runtime) threadState(t *Thread) ThreadState {
	m := t.M
	frames := t.PreSignalFrames()
	if m == nil {
		if t.TLSG == 0 || t.G == nil {
			return StateNonGo
		}
		return StateUnknown
	}
	if m.IsExtra && m.ExtraInC {
		return StateNonGo
	}
	if len(frames) == 0 {
		return StateUnknown
	}
	top := frames[0]
	if m.IsExtra && top.Kind == FrameC {
		// A C thread that borrowed an extra M (a callback into Go, or a
		// signal the runtime handled for it) but runs C code.
		return StateNonGo
	}
	curg := m.CurG()
	switch {
	case top.Kind == FrameC && (m.InCgo || m.NCgo > 0 && curg != nil && curg.InSyscall()):
		return StateInCgo
	case top.Kind == FrameC && curg == nil:
		// C code on a Go thread without a goroutine: the runtime's
		// own C calls (e.g. the cgo scheduler hooks).
		return StateRuntime
	case curg != nil && top.G != nil && top.G.Addr == curg.Addr:
		if curg.InSyscall() {
			if m.InCgo {
				return StateInCgo
			}
			return StateInSyscall
		}
		return StateRunningGo
	case curg != nil && curg.InSyscall():
		if m.InCgo {
			return StateInCgo
		}
		return StateInSyscall
	case curg != nil:
		// The goroutine's own M on the system stack (systemstack, GC
		// assist, a throw): still running on the goroutine's behalf.
		return StateRunningGo
	}
	for _, f := range frames {
		if idleFuncs[f.Func] {
			return StateIdle
		}
	}
	return StateRuntime
}

// markCrashing marks the thread that crashed the process: the M that
// started the panic (m.dying), else the thread holding a synchronous
// fault's signal frame, else the core's first thread (the one the kernel
// dumped from).
func (r *Runtime) markCrashing() {
	var pick *Thread
	var dying []*Thread
	for _, t := range r.threads {
		if t.M != nil && t.M.Dying > 0 {
			dying = append(dying, t)
		}
	}
	// Several Ms can die at once (two goroutines hitting "concurrent map
	// writes"): the one that raised the final signal killed the process;
	// the others wait in dopanic_m for it.
	// Every M that got the dying M's SIGQUIT may be in crash() too; the
	// kernel lists the thread whose signal ended the process first.
	var first int
	if len(r.Proc.Threads) > 0 {
		first = r.Proc.Threads[0].TID
	}
	for _, t := range dying {
		if hasFunc(t.Stack.Frames, "runtime.dieFromSignal") || hasFunc(t.Stack.Frames, "runtime.crash") {
			if pick == nil || t.TID == first {
				pick = t
			}
		}
	}
	if pick == nil && len(dying) > 0 {
		pick = dying[0]
	}
	if pick == nil {
		for _, t := range r.threads {
			for _, s := range t.Signals {
				if s.Info.Synchronous() {
					pick = t
					break
				}
			}
			if pick != nil {
				break
			}
		}
	}
	if pick == nil && len(r.threads) > 0 {
		pick = r.threads[0]
	}
	if pick != nil {
		pick.Crashing = true
	}
	for _, t := range dying {
		if t != pick {
			r.alsoDying = append(r.alsoDying, t)
		}
	}
}

// tlsSlotInfo is where the runtime keeps g in thread-local storage,
// relative to the thread pointer.
type tlsSlotInfo struct {
	off int64
	ok  bool
	how string
}

// tlsSlot works out the offset of the g slot from the thread pointer:
// fs_base−8 in pure Go binaries (the runtime points fs at m.tls+8); for
// externally linked ones the offset of runtime.tlsg in the static TLS
// block (variant II: the block ends at the thread pointer). Either way it
// is checked against the offset the code itself uses (mov %fs:disp,%r14).
func (r *Runtime) tlsSlot() tlsSlotInfo {
	f, err := r.Binary.Image.ELF()
	if err != nil {
		return tlsSlotInfo{}
	}
	var tlsProg *elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_TLS {
			tlsProg = p
		}
	}
	codeOff, codeOK := r.tlsOffsetFromCode(f)
	var symOff int64
	symOK := false
	if s, ok := tlsSymbol(f, "runtime.tlsg"); ok && tlsProg != nil {
		align := max(tlsProg.Align, 1)
		size := (tlsProg.Memsz + align - 1) / align * align
		symOff, symOK = int64(s.Value)-int64(size), true
	} else if tlsProg == nil {
		symOff, symOK = -8, true
	}
	switch {
	case symOK && codeOK && symOff != codeOff:
		r.note("TLS g slot: the symbol table says fs%+d, the code uses fs%+d; using the code's", symOff, codeOff)
		return tlsSlotInfo{off: codeOff, ok: true, how: "code"}
	case codeOK:
		return tlsSlotInfo{off: codeOff, ok: true, how: "code"}
	case symOK:
		return tlsSlotInfo{off: symOff, ok: true, how: "symbol"}
	}
	r.note("TLS g slot unknown: threads are matched to Ms by procid only")
	return tlsSlotInfo{}
}

// tlsSymbol finds a thread-local (STT_TLS) symbol, which the image's
// symbol index leaves out: its value is an offset in the TLS block.
func tlsSymbol(f *elf.File, name string) (elf.Symbol, bool) {
	syms, err := f.Symbols()
	if err != nil {
		return elf.Symbol{}, false
	}
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_TLS {
			return s, true
		}
	}
	return elf.Symbol{}, false
}

// tlsOffsetFromCode scans the Go text for the instructions that load g
// into R14 and returns the fs offset most of them use.
func (r *Runtime) tlsOffsetFromCode(f *elf.File) (int64, bool) {
	text := f.Section(".text")
	if text == nil {
		return 0, false
	}
	data, err := text.Data()
	if err != nil {
		return 0, false
	}
	// Only the Go part of the text (external linking puts C code around it).
	lo, hi := uint64(0), uint64(len(data))
	if r.Funcs != nil {
		bias := r.Binary.Image.Bias
		if r.Funcs.MinPC-bias > text.Addr {
			lo = min(r.Funcs.MinPC-bias-text.Addr, hi)
		}
		if end := r.Funcs.MaxPC - bias - text.Addr; end < hi {
			hi = end
		}
	}
	data = data[lo:hi]
	base := text.Addr + lo
	counts := map[int64]int{}
	found := 0
	patFS := []byte{0x64, 0x4c, 0x8b, 0x34, 0x25} // mov %fs:disp32,%r14
	patLoad := []byte{0x64, 0x4d, 0x8b, 0x36}     // mov %fs:(%r14),%r14
	patImm := []byte{0x49, 0xc7, 0xc6}            // mov $imm32,%r14
	patGOT := []byte{0x4c, 0x8b, 0x35}            // mov rel32(%rip),%r14
	for i := 0; i < len(data) && found < 64; i++ {
		switch {
		case bytes.HasPrefix(data[i:], patFS) && i+9 <= len(data):
			counts[int64(int32(binary.LittleEndian.Uint32(data[i+5:])))]++
			found++
			i += 8
		case bytes.HasPrefix(data[i:], patImm) && i+11 <= len(data) && bytes.HasPrefix(data[i+7:], patLoad):
			counts[int64(int32(binary.LittleEndian.Uint32(data[i+3:])))]++
			found++
			i += 10
		case bytes.HasPrefix(data[i:], patGOT) && i+11 <= len(data) && bytes.HasPrefix(data[i+7:], patLoad):
			slot := base + uint64(i) + 7 + uint64(int64(int32(binary.LittleEndian.Uint32(data[i+3:]))))
			if v, err := r.Proc.ReadUint64(slot + r.Binary.Image.Bias); err == nil {
				counts[int64(v)]++
				found++
			}
			i += 10
		}
	}
	best, bestN := int64(0), 0
	for off, n := range counts {
		if n > bestN || n == bestN && off > best {
			best, bestN = off, n
		}
	}
	return best, bestN > 0 && best < 0 && best > -1<<20
}

// hasCrashPath reports a stack that runs the runtime's crash machinery.
func hasCrashPath(frames []Frame) bool {
	for _, f := range frames {
		switch f.Func {
		case "runtime.crash", "runtime.fatalpanic", "runtime.fatalthrow", "runtime.dieFromSignal":
			return true
		}
	}
	return false
}
