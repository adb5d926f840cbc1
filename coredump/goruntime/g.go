package goruntime

import (
	"errors"
	"fmt"
)

// Gobuf is a saved goroutine context (runtime.gobuf).
type Gobuf struct {
	SP, PC, BP, LR uint64
}

// G is one goroutine (runtime.g), or an M's g0 or gsignal.
type G struct {
	Addr uint64
	ID   int64
	// Status is runtime.g.atomicstatus, scan bit included.
	Status uint32
	// WaitReason is the raw runtime.waitReason (meaningful while waiting).
	WaitReason uint8
	// WaitSince is the runtime's nanotime when the goroutine blocked, 0
	// when not recorded (the runtime records it only during a GC cycle).
	WaitSince int64

	StackLo, StackHi uint64
	Sched            Gobuf
	SyscallSP        uint64
	SyscallPC        uint64

	MAddr       uint64 // runtime.g.m
	LockedMAddr uint64 // runtime.g.lockedm: locked to an OS thread
	Panic       uint64 // the _panic chain
	Defer       uint64

	// Sig, SigCode0, SigCode1 and SigPC record the last signal that the
	// runtime turned into a panic in this goroutine: the signal, si_code,
	// the fault address and the faulting pc.
	Sig      uint32
	SigCode0 uint64
	SigCode1 uint64
	SigPC    uint64

	ParentID int64  // the goroutine that created it (0 when unknown)
	GoPC     uint64 // pc of the go statement that created it
	StartPC  uint64 // the function it started with
	Labels   uint64 // pprof labels map, when set

	// Role says whether the g is a goroutine or an M's g0/gsignal.
	Role GRole
	// Index is the goroutine's position in Runtime.Gs, -1 for the gs
	// that are not in it (dead ones, g0s, gsignals): side tables of
	// goroutines are slices indexed by it.
	Index  int
	system bool

	r *Runtime
	// bucket is the goroutine's bucket of identical stacks, set by the
	// first Buckets walk at the default depth.
	bucket *Bucket
}

// GRole says what a g is used for.
type GRole uint8

const (
	RoleGoroutine GRole = iota
	RoleG0              // an M's scheduling stack (the thread's own stack)
	RoleGsignal         // an M's signal handling stack
)

func (k GRole) String() string {
	switch k {
	case RoleG0:
		return "g0"
	case RoleGsignal:
		return "gsignal"
	}
	return "goroutine"
}

// M is one OS thread as the runtime knows it (runtime.m).
type M struct {
	Addr      uint64
	ID        int64
	ProcID    uint64 // the thread's tid, set by minit
	G0        *G
	Gsignal   *G
	CurGAddr  uint64
	CaughtSig uint64 // the g running when a fatal signal arrived
	Throwing  int64  // runtime.throwType: 0 none, 1 user, 2 runtime
	Dying     int32
	InCgo     bool // executing a cgo call
	NCgo      int32
	IsExtra   bool // an extra M for C threads calling into Go
	ExtraInC  bool // an extra M whose thread is back in C
	LockedG   uint64
	P         uint64
	Spinning  bool
	Blocked   bool
	Mallocing int32
	Locks     int32
	// SigStackLo is the base of the signal stack the runtime installed
	// with sigaltstack (goSigStack), 0 when unknown.
	SigStackLo uint64

	r *Runtime
}

// CurG is the goroutine the M is running (nil when idle).
func (m *M) CurG() *G { return m.r.gByAddr[m.CurGAddr] }

func (m *M) String() string { return fmt.Sprintf("M%d", m.ID) }

// M returns the M the goroutine runs on (nil when not running).
func (g *G) M() *M {
	if g.MAddr == 0 {
		return nil
	}
	return g.r.mByAddr[g.MAddr]
}

// LockedM returns the M the goroutine is locked to with LockOSThread.
func (g *G) LockedM() *M {
	if g.LockedMAddr == 0 {
		return nil
	}
	return g.r.mByAddr[g.LockedMAddr]
}

// State is the status without the scan bit.
func (g *G) State() uint32 { return g.Status &^ g.r.off.gScan }

// StatusName is the status as the runtime's traceback header names it
// ("running", "syscall", "waiting", ...).
func (g *G) StatusName() string { return g.r.StatusName(g.Status) }

// WaitReasonName is the wait reason ("chan receive", ...), "" when not
// waiting.
func (g *G) WaitReasonName() string {
	s := g.State()
	if s == g.r.off.gWaiting || (g.r.off.gLeaked >= 0 && s == uint32(g.r.off.gLeaked)) {
		return g.r.WaitReasonName(g.WaitReason)
	}
	return ""
}

// Header is the bracketed state the runtime prints after "goroutine N",
// e.g. "chan receive" or "running".
func (g *G) Header() string {
	if w := g.WaitReasonName(); w != "" {
		return w
	}
	return g.StatusName()
}

// Running, Waiting, InSyscall report the goroutine's state.
func (g *G) Running() bool   { return g.State() == g.r.off.gRunning }
func (g *G) InSyscall() bool { return g.State() == g.r.off.gSyscall }
func (g *G) Waiting() bool   { return g.State() == g.r.off.gWaiting }

// OnStack reports whether addr lies in the goroutine's stack.
func (g *G) OnStack(addr uint64) bool { return addr >= g.StackLo && addr < g.StackHi }

func (g *G) String() string {
	if g.Role != RoleGoroutine {
		return g.Role.String()
	}
	return fmt.Sprintf("goroutine %d", g.ID)
}

// fields reads the fields of a struct copied from memory; an offset of -1
// (a field the release lacks) reads as zero.
type fields []byte

func (f fields) u64(off int64) uint64 {
	if off < 0 || off+8 > int64(len(f)) {
		return 0
	}
	return le64(f[off:])
}

func (f fields) i32(off int64) int32 {
	if off < 0 || off+4 > int64(len(f)) {
		return 0
	}
	return int32(le32(f[off:]))
}

func (f fields) flag(off int64) bool { return off >= 0 && off < int64(len(f)) && f[off] != 0 }

// readG reads the g struct at addr.
func (r *Runtime) readG(addr uint64, buf []byte, role GRole) (*G, error) {
	o := &r.off
	if o.gSize == 0 {
		return nil, errors.New("runtime.g layout unknown")
	}
	if int64(len(buf)) < o.gSize {
		buf = make([]byte, o.gSize)
	}
	buf = buf[:o.gSize]
	if _, err := r.Proc.ReadMemory(buf, addr); err != nil {
		return nil, err
	}
	u64 := fields(buf).u64
	g := &G{Addr: addr, r: r, Role: role, Index: -1}
	g.StackLo, g.StackHi = u64(o.gStackLo), u64(o.gStackHi)
	g.Panic, g.Defer, g.MAddr = u64(o.gPanic), u64(o.gDefer), u64(o.gM)
	g.Sched = Gobuf{SP: u64(o.gSchedSP), PC: u64(o.gSchedPC), BP: u64(o.gSchedBP), LR: u64(o.gSchedLR)}
	g.SyscallSP, g.SyscallPC = u64(o.gSyscallSP), u64(o.gSyscallPC)
	g.Status = le32(buf[o.gStatus:])
	g.ID = int64(u64(o.gGoid))
	g.WaitSince = int64(u64(o.gWaitSince))
	g.WaitReason = buf[o.gWaitReason]
	g.LockedMAddr = u64(o.gLockedM)
	g.Sig = le32(buf[o.gSig:])
	g.SigCode0, g.SigCode1, g.SigPC = u64(o.gSigcode0), u64(o.gSigcode1), u64(o.gSigPC)
	g.ParentID = int64(u64(o.gParentGoid))
	g.GoPC, g.StartPC, g.Labels = u64(o.gGopc), u64(o.gStartPC), u64(o.gLabels)
	return g, nil
}

func (r *Runtime) readM(addr uint64, buf []byte) (*M, error) {
	o := &r.off
	buf = buf[:o.mSize]
	if _, err := r.Proc.ReadMemory(buf, addr); err != nil {
		return nil, err
	}
	u64, i32, b := fields(buf).u64, fields(buf).i32, fields(buf).flag
	m := &M{Addr: addr, r: r}
	m.ID = int64(u64(o.mID))
	m.ProcID = u64(o.mProcID)
	m.CurGAddr = u64(o.mCurG)
	m.CaughtSig = u64(o.mCaughtSig)
	m.Throwing = int64(i32(o.mThrowing))
	m.Dying = i32(o.mDying)
	m.InCgo, m.IsExtra, m.ExtraInC = b(o.mIncgo), b(o.mIsExtra), b(o.mIsExtraInC)
	m.NCgo = i32(o.mNcgo)
	m.LockedG, m.P = u64(o.mLockedG), u64(o.mP)
	m.Spinning, m.Blocked = b(o.mSpinning), b(o.mBlocked)
	m.Mallocing, m.Locks = i32(o.mMallocing), i32(o.mLocks)
	m.SigStackLo = u64(o.mGoSigStackLo)
	for _, x := range []struct {
		off  int64
		role GRole
		dst  **G
	}{{o.mG0, RoleG0, &m.G0}, {o.mGsignal, RoleGsignal, &m.Gsignal}} {
		ga := u64(x.off)
		if ga == 0 {
			continue
		}
		if g, ok := r.gByAddr[ga]; ok {
			*x.dst = g
			continue
		}
		g, err := r.readG(ga, nil, x.role)
		if err != nil {
			r.note("M%d: %s at %#x unreadable: %v", m.ID, x.role, ga, err)
			continue
		}
		r.gByAddr[ga] = g
		*x.dst = g
	}
	return m, nil
}

// readMs walks allm through m.alllink.
func (r *Runtime) readMs() error {
	head, _, ok := r.global("runtime.allm")
	if !ok {
		return fmt.Errorf("runtime.allm not in the symbol table: Ms are found through the threads only")
	}
	addr, err := r.Proc.ReadUint64(head)
	if err != nil {
		return fmt.Errorf("runtime.allm: %w", err)
	}
	buf := make([]byte, r.off.mSize)
	for n := 0; addr != 0; n++ {
		if n == maxMs {
			return fmt.Errorf("allm: more than %d Ms: the list is corrupt", maxMs)
		}
		if _, seen := r.mByAddr[addr]; seen {
			return fmt.Errorf("allm: cycle at M %#x", addr)
		}
		m, err := r.readM(addr, buf)
		if err != nil {
			return fmt.Errorf("allm: M at %#x: %w", addr, err)
		}
		r.mByAddr[addr] = m
		r.Ms = append(r.Ms, m)
		addr = le64(buf[r.off.mAllLink:])
	}
	return nil
}

// readGs reads allgs.
func (r *Runtime) readGs() error {
	a, _, ok := r.global("runtime.allgs")
	if !ok {
		return fmt.Errorf("goruntime: runtime.allgs not in the symbol table (stripped binary): goroutines cannot be listed")
	}
	var hdr [24]byte
	if _, err := r.Proc.ReadMemory(hdr[:], a); err != nil {
		return fmt.Errorf("goruntime: runtime.allgs: %w", err)
	}
	ptr, n := le64(hdr[:]), le64(hdr[8:])
	if la, _, ok := r.global("runtime.allglen"); ok {
		if v, err := r.Proc.ReadUint64(la); err == nil && v <= n {
			n = v // allglen is what the runtime itself walks
		}
	}
	if n > maxGoroutines {
		return fmt.Errorf("goruntime: allglen %d is implausible: allgs is corrupt", n)
	}
	r.AllGLen = int(n)
	ptrs := make([]byte, 8*n)
	if k, err := r.Proc.ReadMemory(ptrs, ptr); err != nil {
		r.note("allgs: only %d of %d entries readable: %v", k/8, n, err)
		ptrs = ptrs[:k/8*8]
	}
	buf := make([]byte, r.off.gSize)
	defer r.Proc.Progress("reading goroutines", len(ptrs)/8, len(ptrs)/8)
	for i := 0; i+8 <= len(ptrs); i += 8 {
		if i%(8*progressEvery) == 0 {
			r.Proc.Progress("reading goroutines", i/8, len(ptrs)/8)
		}
		ga := le64(ptrs[i:])
		if ga == 0 {
			continue
		}
		g, err := r.readG(ga, buf, RoleGoroutine)
		if err != nil {
			r.note("allgs[%d]: g at %#x unreadable: %v", i/8, ga, err)
			continue
		}
		if old, dup := r.gByAddr[ga]; dup && old.Role == RoleGoroutine {
			r.note("allgs[%d]: g %#x listed twice", i/8, ga)
			continue
		}
		r.gByAddr[ga] = g
		if r.off.dead(g.Status) {
			r.Dead = append(r.Dead, g)
			continue
		}
		g.Index = len(r.Gs)
		g.system = r.systemStart(g.StartPC)
		r.Gs = append(r.Gs, g)
	}
	return nil
}

// IsSystem reports a goroutine the runtime counts as a system goroutine
// (runtime/traceback.go isSystemGoroutine): one started in package
// runtime other than runtime.main.
func (g *G) IsSystem() bool {
	if g.Index >= 0 {
		return g.system
	}
	return g.r.systemStart(g.StartPC)
}

// systemStart reports a goroutine start function of the runtime's own
// goroutines.
func (r *Runtime) systemStart(pc uint64) bool {
	r.systemMu.Lock()
	defer r.systemMu.Unlock()
	sys, ok := r.systemStarts[pc]
	if !ok {
		sys = r.isSystemStart(pc)
		if r.systemStarts == nil {
			r.systemStarts = map[uint64]bool{}
		}
		r.systemStarts[pc] = sys
	}
	return sys
}

func (r *Runtime) isSystemStart(pc uint64) bool {
	f, ok := r.Funcs.FuncAt(pc)
	if !ok || f.Entry != pc {
		return false
	}
	name := f.Name()
	switch name {
	case "runtime.main", "runtime.handleAsyncEvent":
		return false
	case "runtime.runFinalizers", "runtime.runfinq", "runtime.runCleanups":
		return true // finalizer goroutines count as system while idle
	}
	return len(name) > 8 && name[:8] == "runtime."
}
