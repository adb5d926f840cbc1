package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

// Hang rules: what goroutines wait on and who holds it, goroutine leaks,
// threads stuck in C. They run on cores and on live processes alike; on a
// process that did not crash (a live one, a dump taken on request) the
// biggest contention is the cause of the hang.
func init() {
	Register(Rule{Name: "lock-contention", Run: lockContention})
	Register(Rule{Name: "goroutine-leak", Run: goroutineLeak})
	Register(Rule{Name: "stuck-in-c", Run: stuckInC})
}

// hangContext reports a process that is stuck rather than crashed: a live
// one, or a core whose signal came from outside (a dump on request).
func hangContext(h *HangFacts) bool {
	if h.p.Live() {
		return true
	}
	c, err := h.RT.Crash()
	if err != nil || c == nil {
		return h.p.Signal == nil
	}
	return c.Kind == goruntime.CrashExternal
}

// Ranks of the hang findings among the others (lower comes first).
const (
	rankContention = 20
	rankStuckInC   = 40
	rankLeak       = 50
)

// minChannelWaiters is how many goroutines must wait on one channel for it
// to count as contention: a single goroutine waiting for work on its own
// channel is how idle programs look.
const minChannelWaiters = 2

// Objects of one kind that the same code waits on in the same way form a
// family (one channel per request, one mutex per connection): from
// minFamily objects on they are reported together. At most
// maxContentionFindings findings are made; the rest is counted in a note.
const (
	minFamily             = 3
	maxProgressChecks     = 64
	maxContentionFindings = 10
)

func lockContention(f *Facts) []Finding {
	h, err := f.Hang()
	if err != nil {
		return nil
	}
	hang := hangContext(h)
	// Group the objects into families, keeping the order of waiters.
	type family struct {
		objs []*WaitObject
	}
	var fams []*family
	byKey := map[string]*family{}
	for _, o := range h.Objects {
		if o.Kind == "channel" && len(o.Waiters) < minChannelWaiters {
			continue
		}
		key := o.Kind + "\x00" + o.Mode
		for _, fc := range o.WaitingFuncs() {
			key += fmt.Sprintf("\x00%s\x00%d", fc.Func, fc.Count)
		}
		fm := byKey[key]
		if fm == nil {
			fm = &family{}
			byKey[key] = fm
			fams = append(fams, fm)
		}
		fm.objs = append(fm.objs, o)
	}
	var out []Finding
	causeGiven, skipped, progressing := false, 0, 0
	for _, fm := range fams {
		n := 1
		if len(fm.objs) >= minFamily {
			n = len(fm.objs)
		}
		for i, o := range fm.objs[:n] {
			// A family's objects share their waiters' code: a sample of
			// them tells whether their holders were at work.
			if !hang && i < maxProgressChecks && h.holderProgressing(o) {
				progressing++
				continue
			}
			if len(out) == maxContentionFindings {
				skipped++
				continue
			}
			var fd Finding
			if len(fm.objs) >= minFamily {
				fd = h.familyContention(fm.objs)
			} else {
				fd = h.contention(o)
			}
			// Related findings of a crash come after its cause; the
			// objects are in order of waiters. A family is the symptom of
			// a leak, reported first as such.
			fd.Rank = rankContention + len(out)
			if len(fm.objs) >= minFamily {
				fd.Rank = rankLeak + 1 + len(out)
			}
			if hang && !causeGiven {
				fd.Cause, causeGiven = true, true
			}
			out = append(out, fd)
			if len(fm.objs) >= minFamily {
				break
			}
		}
	}
	if skipped > 0 {
		f.Note("lock-contention: %s with waiters not reported (the %d with the most waiters are)", plural(skipped, "more object"), maxContentionFindings)
	}
	if progressing > 0 {
		f.Note("lock-contention: %s with waiters not reported: a goroutine holding or referring to each was running, runnable or in a system call when the process crashed, so the wait was not stuck", plural(progressing, "object"))
	}
	return out
}

// holderProgressing reports that a goroutine the waiters of o wait for
// (its likely holders, else the goroutines referring to it) was not
// blocked: in a crash core that is work in progress cut short by the
// crash, such as a WaitGroup waiting for workers that were still running,
// not contention.
func (h *HangFacts) holderProgressing(o *WaitObject) bool {
	strong, weak := h.Holders(o)
	if strong.Count > 0 {
		return strong.Working > 0
	}
	return weak.Working > 0
}

// familyContention reports objects of one family together: the waiters in
// all, how many objects, and the first object's holder as an example.
func (h *HangFacts) familyContention(objs []*WaitObject) Finding {
	fd := h.contention(objs[0])
	total := 0
	var addrs []string
	for i, o := range objs {
		total += len(o.Waiters)
		if i < 5 {
			addrs = append(addrs, fmt.Sprintf("%#x", o.Addr))
		}
	}
	o := objs[0]
	kinds := o.Kind + "s"
	if o.Kind == "sync.Mutex" || o.Kind == "sync.RWMutex" {
		kinds = o.Kind + "es"
	}
	head := fmt.Sprintf("%s %s %s %s %d %s (%d on each)", plural(total, "goroutine"), describeFuncs(o.WaitingFuncs()), "wait", modeWords[o.Mode], len(objs), kinds, len(o.Waiters))
	// Keep what the single-object summary says about the first object's
	// holder, which stands for the family.
	if i := strings.Index(fd.Summary, o.Label()); i >= 0 {
		fd.Summary = head + fd.Summary[i+len(o.Label()):]
	} else {
		fd.Summary = head
	}
	fd.Summary = strings.Replace(fd.Summary, "no other goroutine's code or stack refers to it", "no other goroutine's code or stack refers to the first of them", 1)
	more := ""
	if len(objs) > len(addrs) {
		more = fmt.Sprintf(" and %d more", len(objs)-len(addrs))
	}
	fd.Evidence = append([]Evidence{{What: fmt.Sprintf("%d %s with the same waiters: %s%s; the evidence below is about the first", len(objs), kinds, strings.Join(addrs, ", "), more),
		Source: objs[0].Source}}, fd.Evidence...)
	fd.Key = "family " + fd.Key
	return fd
}

// modeWords say what waiters want, after "wait".
var modeWords = map[string]string{"Lock": "to lock", "RLock": "to read-lock", "Wait": "on",
	"Acquire": "to acquire", "receive": "to receive from", "send": "to send on", "select": "in select on"}

// contention builds the lock-contention finding for one object.
func (h *HangFacts) contention(o *WaitObject) Finding {
	fd := Finding{Class: LockContention, Confidence: High}
	funcs := o.WaitingFuncs()
	n := len(o.Waiters)
	who := describeFuncs(funcs)
	what := modeWords[o.Mode]
	verb := "wait"
	if n == 1 {
		verb = "waits"
	}
	fd.Summary = fmt.Sprintf("%s %s %s %s %s", plural(n, "goroutine"), who, verb, what, o.Label())

	// What the object is and its own state.
	if o.Name == "" {
		if r := h.region(o.Addr); r != nil {
			fd.Evidence = append(fd.Evidence, Ev(fmt.Sprintf("the %s is in %s", o.Kind, r.Summary), o.Addr, "address classification"))
		}
	}
	if e, ok := h.objectState(o); ok {
		fd.Evidence = append(fd.Evidence, e)
	}
	ids := make([]string, 0, 10)
	for i, w := range o.Waiters {
		if i == 10 {
			ids = append(ids, fmt.Sprintf("and %d more", n-10))
			break
		}
		ids = append(ids, fmt.Sprint(w.G.ID))
	}
	source := "the runtime's semaphore table (runtime.semtable)"
	if o.Source == "g.waiting" {
		source = "the goroutines' g.waiting lists (sudog.c)"
	}
	waitAddr := o.Addr
	if o.Sema != 0 {
		waitAddr = o.Sema
	}
	e := Ev(fmt.Sprintf("%s wait on %#x: %s", plural(n, "goroutine"), waitAddr, funcList(funcs)), waitAddr, source)
	e.Value = "goroutines " + strings.Join(ids, ", ")
	fd.Evidence = append(fd.Evidence, e)
	if d, w := o.LongestWait(); d >= 0 {
		// g.waitsince is set when a garbage collection finds the goroutine
		// blocked, after the wait began: the wait is at least this long.
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("goroutine %d has waited at least %s", w.G.ID, fmtDuration(d)),
			Value: fmt.Sprintf("g.waitsince %d", w.G.WaitSince), Source: fmt.Sprintf("goroutine %d", w.G.ID)})
	} else {
		fd.Evidence = append(fd.Evidence, Evidence{What: "how long they have waited is not recorded (the runtime notes when a wait began only during a garbage collection)"})
	}

	strong, weak := h.Holders(o)
	holders := strong.First
	switch {
	case strong.Count == 1:
	case strong.Count > 1:
		fd.Confidence, fd.Why = Medium, fmt.Sprintf("%d goroutines look like holders", strong.Count)
	case weak.Count > 0 && o.Kind != "channel":
		holders = weak.First
		fd.Confidence, fd.Why = Medium, "no goroutine's code both takes this lock and refers to it; these refer to it"
	case weak.Count > 0:
		holders = weak.First
	default:
		fd.Confidence = Medium
		if !isLock(o) {
			fd.Summary += "; no other goroutine's code or stack refers to it"
			fd.Why = "no goroutine's stack refers to the channel: the other side may be gone, or it reaches the channel through the heap"
		} else {
			fd.Why = "no goroutine's stack shows who holds it: code that returned without unlocking (a missed Unlock on an error path), or a holder that exited"
		}
	}
	if len(holders) > 5 {
		holders = holders[:5]
	}
	for i, ho := range holders {
		role := "held by"
		switch {
		case o.Kind == "sync.WaitGroup" && strong.Count > 0:
			role = "waiting for"
		case o.Kind == "channel" || o.Kind == "sync.WaitGroup" || o.Kind == "semaphore":
			role = "referenced by"
		}
		doing, ev := h.doing(ho.G, ho.Frame.Func)
		if i == 0 {
			more := ""
			if n := strong.Count + weak.Count; strong.Count > 1 || (strong.Count == 0 && weak.Count > 1) {
				if strong.Count > 0 {
					n = strong.Count
				}
				more = fmt.Sprintf(" (and %s)", plural(n-1, "other"))
			}
			fd.Summary += fmt.Sprintf(", %s goroutine %d in %s%s, which is %s", role, ho.G.ID, ho.Frame.Func, more, doing)
			fd.Location = &Location{Goroutine: ho.G.ID, Function: ho.Frame.Func, File: ho.Frame.File, Line: ho.Frame.Line, PC: AddrPtr(ho.Frame.PC)}
			fd.Key = fmt.Sprintf("%s %s by %s", o.Kind, funcs[0].Func, ho.Frame.Func)
		}
		fd.Evidence = append(fd.Evidence, ho.Evidence...)
		fd.Evidence = append(fd.Evidence, ev...)
		if cyc := h.cycle(o, ho.G); cyc != "" {
			fd.Summary += "; " + cyc
			fd.Evidence = append(fd.Evidence, Evidence{What: cyc, Source: "holders and waits of the goroutines"})
		}
	}
	if fd.Key == "" && len(funcs) > 0 {
		fd.Key = fmt.Sprintf("%s %s", o.Kind, funcs[0].Func)
	}
	if o.Waiters[0].Where != nil && fd.Location == nil {
		fr := o.Waiters[0].Where
		fd.Location = &Location{Goroutine: o.Waiters[0].G.ID, Function: fr.Func, File: fr.File, Line: fr.Line, PC: AddrPtr(fr.PC)}
	}
	return fd
}

// objectState reads the lock's state word, when the object is a lock.
func (h *HangFacts) objectState(o *WaitObject) (Evidence, bool) {
	p := h.p
	switch o.Kind {
	case "sync.Mutex":
		st, err := p.ReadUint32(o.Addr)
		if err != nil {
			return Evidence{}, false
		}
		// sync.Mutex.state: bit 0 locked, 1 woken, 2 starving, waiters
		// from bit 3 (sync/mutex.go, unchanged since Go 1.9).
		var parts []string
		if st&1 != 0 {
			parts = append(parts, "locked")
		} else {
			parts = append(parts, "unlocked (being handed over)")
		}
		parts = append(parts, plural(int(st>>3), "waiter"))
		if st&4 != 0 {
			parts = append(parts, "starving: a waiter has waited more than 1 ms")
		}
		e := Ev(fmt.Sprintf("%s is %s", o.Label(), strings.Join(parts, ", ")), o.Addr, "sync.Mutex.state in memory")
		e.Value = fmt.Sprintf("%#x", st)
		return e, true
	case "sync.RWMutex":
		rc, err := p.ReadUint32(o.Addr + uint64(h.offs.rwReaderCount))
		if err != nil {
			return Evidence{}, false
		}
		readers := int32(rc)
		desc := fmt.Sprintf("%s has %s", o.Label(), plural(int(readers), "reader"))
		if readers < 0 {
			// A pending writer subtracts rwmutexMaxReaders (1<<30).
			desc = fmt.Sprintf("%s has a writer waiting or holding it and %s", o.Label(), plural(int(readers+1<<30), "reader"))
		}
		e := Ev(desc, o.Addr, "sync.RWMutex.readerCount in memory")
		e.Value = fmt.Sprint(readers)
		return e, true
	case "sync.WaitGroup":
		off, err := h.RT.Binary.Layout.Off("sync.WaitGroup", "state")
		if err != nil {
			off = 0
		}
		st, err := p.ReadUint64(o.Addr + uint64(off))
		if err != nil {
			return Evidence{}, false
		}
		// state: the counter in the high 32 bits, the waiters in the low
		// 31 (bit 31 marks a synctest bubble since Go 1.25).
		e := Ev(fmt.Sprintf("%s has counter %d (Done still to be called %d times) and %s", o.Label(), int32(st>>32), int32(st>>32), plural(int(st&0x7fffffff), "waiter")),
			o.Addr, "sync.WaitGroup.state in memory")
		e.Value = fmt.Sprintf("%#x", st)
		return e, true
	case "channel":
		return h.chanState(o)
	}
	return Evidence{}, false
}

// chanState describes a channel from its runtime.hchan.
func (h *HangFacts) chanState(o *WaitObject) (Evidence, bool) {
	l := h.RT.Binary.Layout
	read := func(field string, size int) (uint64, bool) {
		off, err := l.Off("runtime.hchan", field)
		if err != nil {
			return 0, false
		}
		if size == 4 {
			v, err := h.p.ReadUint32(o.Addr + uint64(off))
			return uint64(v), err == nil
		}
		v, err := h.p.ReadUint64(o.Addr + uint64(off))
		return v, err == nil
	}
	qcount, ok1 := read("qcount", 8)
	size, ok2 := read("dataqsiz", 8)
	closed, ok3 := read("closed", 4)
	if !ok1 || !ok2 || !ok3 {
		return Evidence{}, false
	}
	desc := fmt.Sprintf("channel %#x: capacity %d, %d queued", o.Addr, size, qcount)
	if size == 0 {
		desc = fmt.Sprintf("channel %#x is unbuffered", o.Addr)
	}
	if closed != 0 {
		desc += ", closed"
	} else {
		desc += ", open"
	}
	return Ev(desc, o.Addr, "runtime.hchan in memory"), true
}

// doing says what goroutine g is doing now, with the evidence; fn is the
// function already named for it.
func (h *HangFacts) doing(g *goruntime.G, fn string) (string, []Evidence) {
	st := h.frames(g)
	src := fmt.Sprintf("stack of goroutine %d", g.ID)
	switch {
	case g.InSyscall():
		if t := h.threadOf(g); t != nil {
			if t.State == goruntime.StateInCgo {
				chain := cChain(t)
				s := "in a cgo call"
				if chain != "" {
					s = "in C function " + innermostUser(t) + " (cgo call)"
				}
				ev := Evidence{What: fmt.Sprintf("goroutine %d is in a cgo call on thread %d: %s", g.ID, t.TID, chain),
					Source: fmt.Sprintf("thread %d's stack", t.TID)}
				if sc := syscallOf(t.Core); sc != "" {
					ev.What += ", in system call " + sc
				}
				return s, []Evidence{ev}
			}
			if sc := syscallOf(t.Core); sc != "" {
				return "in system call " + sc, []Evidence{{What: fmt.Sprintf("goroutine %d is in system call %s on thread %d", g.ID, sc, t.TID), Source: fmt.Sprintf("thread %d's registers (orig_rax)", t.TID)}}
			}
		}
		return "in a system call", nil
	case g.Waiting():
		reason := g.WaitReasonName()
		s := "waiting (" + reason + ")"
		if ws := h.WaitsOf(g); len(ws) > 0 {
			s = fmt.Sprintf("itself waiting (%s) on %s", reason, ws[0].Label())
		} else if in := firstNonRuntime(st); in != fn && in != "?" {
			s = fmt.Sprintf("waiting (%s) in %s", reason, in)
		}
		return s, []Evidence{{What: fmt.Sprintf("goroutine %d is %s", g.ID, s), Source: src}}
	case g.Running():
		if t := h.threadOf(g); t != nil {
			return fmt.Sprintf("running on thread %d", t.TID), nil
		}
		return "running", nil
	}
	return g.StatusName(), nil
}

// firstNonRuntime names the innermost frame outside the runtime: the call
// that blocked, such as time.Sleep.
func firstNonRuntime(frames []goruntime.Frame) string {
	for _, fr := range frames {
		if fr.Func != "" && !strings.HasPrefix(fr.Func, "runtime.") && !strings.HasPrefix(fr.Func, "internal/runtime/") {
			return fr.Func
		}
	}
	return "?"
}

// threadOf returns the thread running goroutine g.
func (h *HangFacts) threadOf(g *goruntime.G) *goruntime.Thread {
	for _, t := range h.RT.Threads() {
		if t.Goroutine == g {
			return t
		}
	}
	return nil
}

// cFrames are the C frames of what a thread was doing, innermost first.
func cFrames(t *goruntime.Thread) []goruntime.Frame {
	var out []goruntime.Frame
	top := min(t.Top, len(t.Stack.Frames))
	for _, fr := range t.Stack.Frames[top:] {
		if fr.Kind == goruntime.FrameC {
			out = append(out, fr)
		}
	}
	return out
}

// cChain writes a thread's C frames from the outermost call in: "slow_c_flush
// → libc.so.6`sleep → libc.so.6`clock_nanosleep".
func cChain(t *goruntime.Thread) string {
	fs := cFrames(t)
	names := make([]string, 0, len(fs))
	for i := len(fs) - 1; i >= 0; i-- {
		names = append(names, frameName(fs[i]))
	}
	return strings.Join(names, " → ")
}

// innermostUser names the outermost C frame of the executable: the C
// function the Go code called, not the libc internals it is in.
func innermostUser(t *goruntime.Thread) string {
	fs := cFrames(t)
	for i := len(fs) - 1; i >= 0; i-- {
		if fs[i].Module == "" && fs[i].Func != "" && !strings.HasPrefix(fs[i].Func, "_cgo_") && !strings.HasPrefix(fs[i].Func, "x_cgo") {
			return fs[i].Func
		}
	}
	if len(fs) > 0 {
		return frameName(fs[len(fs)-1])
	}
	return "?"
}

func frameName(fr goruntime.Frame) string {
	name := fr.Func
	if name == "" {
		name = fmt.Sprintf("%#x", fr.PC)
	}
	if fr.Module != "" {
		name = fr.Module + "`" + name
	}
	return name
}

// amd64Syscalls names the system calls a blocked thread is usually in.
var amd64Syscalls = map[uint64]string{
	0: "read", 1: "write", 7: "poll", 16: "ioctl", 17: "pread64", 18: "pwrite64", 19: "readv", 20: "writev",
	23: "select", 34: "pause", 35: "nanosleep", 42: "connect", 43: "accept", 44: "sendto", 45: "recvfrom",
	46: "sendmsg", 47: "recvmsg", 61: "wait4", 72: "fcntl", 73: "flock", 74: "fsync", 75: "fdatasync",
	128: "rt_sigtimedwait", 130: "rt_sigsuspend", 202: "futex", 230: "clock_nanosleep", 232: "epoll_wait",
	247: "waitid", 257: "openat", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait", 288: "accept4",
	299: "recvmmsg", 307: "sendmmsg", 426: "io_uring_enter", 441: "epoll_pwait2",
}

// syscallOf names the system call a thread was in: on amd64 orig_rax holds
// its number (-1 outside a system call).
func syscallOf(t *coredump.Thread) string {
	if t == nil || t.Regs.Arch != coredump.ArchAMD64 {
		return ""
	}
	nr, ok := t.Regs.Get("orig_rax")
	if !ok || int64(nr) < 0 {
		return ""
	}
	if name, ok := amd64Syscalls[nr]; ok {
		return name
	}
	return fmt.Sprintf("#%d", nr)
}

// cycle looks for a chain of holders that waits back on o: a lock-order
// deadlock.
func (h *HangFacts) cycle(o *WaitObject, holder *goruntime.G) string {
	path := []string{fmt.Sprintf("goroutine %d holds %s", holder.ID, o.Label())}
	g := holder
	for step := 0; step < 8; step++ {
		ws := h.WaitsOf(g)
		if len(ws) == 0 || ws[0].Kind == "channel" {
			return ""
		}
		next := ws[0]
		path = append(path, fmt.Sprintf("waits for %s", next.Label()))
		if next == o {
			return "deadlock: " + strings.Join(path, " and ")
		}
		strong, _ := h.Holders(next)
		if strong.Count != 1 {
			return ""
		}
		g = strong.First[0].G
		path = append(path, fmt.Sprintf("goroutine %d holds it", g.ID))
	}
	return ""
}

// Goroutine leaks.

// leakMin and leakShare decide when an identical bucket of blocked
// goroutines is suspicious: at least leakMin goroutines, or leakSmall and
// leakShare of all user goroutines.
const (
	leakMin   = 1000
	leakSmall = 100
	leakShare = 0.5
)

func goroutineLeak(f *Facts) []Finding {
	h, err := f.Hang()
	if err != nil {
		return nil
	}
	user := 0
	for _, g := range h.RT.Gs {
		if !g.IsSystem() {
			user++
		}
	}
	var out []Finding
	for _, b := range h.RT.Buckets(0) {
		n := len(b.Goroutines)
		if b.System || b.Crashing || b.WaitReason == "" || (n < leakMin && (n < leakSmall || float64(n) < leakShare*float64(user))) {
			continue
		}
		fn := "?"
		var loc *Location
		for i := range b.Frames {
			if fr := &b.Frames[i]; fr.Func != "" && !lockPlumbing(fr.Func) {
				fn = fr.Func
				loc = &Location{Function: fr.Func, File: fr.File, Line: fr.Line, PC: AddrPtr(fr.PC)}
				break
			}
		}
		share := 100 * float64(n) / float64(max(user, 1))
		fd := Finding{Class: GoroutineLeak, Confidence: Low, Location: loc, Rank: rankLeak,
			Summary: fmt.Sprintf("%s (%.0f%% of the program's goroutines) are blocked identically (%s) in %s: a goroutine leak?", plural(n, "goroutine"), share, b.WaitReason, fn),
			Why:     "a single snapshot cannot tell a leak from a large idle pool; compare with a later snapshot",
			Key:     fmt.Sprintf("%s in %s", b.WaitReason, fn)}
		if n >= 10*leakMin || share >= 80 {
			fd.Confidence = Medium
		}
		e := Evidence{What: fmt.Sprintf("%s share one stack and state: %s", plural(n, "goroutine"), b.State), Source: "goroutine buckets"}
		ids := b.IDs()
		if len(ids) > 10 {
			e.Value = fmt.Sprintf("goroutines %s and %d more", joinIDs(ids[:10]), len(ids)-10)
		} else {
			e.Value = "goroutines " + joinIDs(ids)
		}
		fd.Evidence = append(fd.Evidence, e)
		if b.CreatedBy != nil {
			fd.Evidence = append(fd.Evidence, Ev("created by "+b.CreatedBy.Func, b.CreatedBy.PC, "g.gopc"))
			fd.Summary = strings.TrimSuffix(fd.Summary, ": a goroutine leak?") + ", created by " + b.CreatedBy.Func + ": a goroutine leak?"
		}
		if b.MaxWaitNanos > 0 {
			fd.Evidence = append(fd.Evidence, Evidence{What: "the longest has waited at least " + fmtDuration(b.MaxWaitNanos), Source: "g.waitsince"})
		}
		for _, o := range h.Objects {
			if len(o.Waiters) > 0 && h.RT.BucketOf(o.Waiters[0].G) == b {
				fd.Evidence = append(fd.Evidence, Ev(fmt.Sprintf("they wait on %s", o.Label()), o.Addr, o.Source))
				break
			}
		}
		out = append(out, fd)
	}
	return out
}

// Threads stuck in C.

func stuckInC(f *Facts) []Finding {
	h, err := f.Hang()
	if err != nil || !hangContext(h) {
		return nil
	}
	var out []Finding
	for _, t := range h.RT.Threads() {
		if t.State != goruntime.StateInCgo {
			continue
		}
		fn := innermostUser(t)
		fd := Finding{Class: StuckInC, Confidence: Medium, Rank: rankStuckInC,
			Why: "one snapshot shows where the thread is, not for how long; attach again to see whether it moved"}
		fd.Summary = fmt.Sprintf("thread %d is in C function %s", t.TID, fn)
		chain := cChain(t)
		fd.Evidence = append(fd.Evidence, Ev("C frames: "+chain, t.Core.Regs.PC(), fmt.Sprintf("thread %d's stack (CFI unwinding)", t.TID)))
		if sc := syscallOf(t.Core); sc != "" {
			fd.Summary += ", blocked in system call " + sc
			nr, _ := t.Core.Regs.Get("orig_rax")
			fd.Evidence = append(fd.Evidence, Evidence{What: "in system call " + sc, Value: fmt.Sprintf("orig_rax %d", nr), Source: fmt.Sprintf("thread %d's registers", t.TID)})
		}
		if t.M != nil {
			fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("%s is in a cgo call (m.incgo; %s so far)", t.M, plural(int(t.M.NCgo), "cgo call")), Source: "runtime.m"})
		}
		fd.Location = &Location{TID: t.TID, Function: fn, PC: AddrPtr(t.Core.Regs.PC())}
		if g := t.Goroutine; g != nil {
			caller := ""
			for _, fr := range h.frames(g) {
				if fr.Func != "" && !lockPlumbing(fr.Func) && !strings.Contains(fr.Func, "._Cfunc_") && !strings.Contains(fr.Func, "._cgo_") {
					caller = fr.Func
					break
				}
			}
			if caller != "" {
				fd.Summary += fmt.Sprintf(", called through cgo by %s (goroutine %d)", caller, g.ID)
			}
			fd.Location.Goroutine = g.ID
			// The objects the contention findings are about.
			for _, o := range h.Objects[:min(len(h.Objects), 2*maxContentionFindings)] {
				if o.Kind == "channel" {
					continue
				}
				if strong, _ := h.Holders(o); strong.Count == 1 && strong.First[0].G == g {
					fd.Summary += fmt.Sprintf(", holding %s that %s wait for", o.Label(), plural(len(o.Waiters), "goroutine"))
					fd.Evidence = append(fd.Evidence, Ev(fmt.Sprintf("goroutine %d holds %s", g.ID, o.Label()), o.Addr, LockContention.String()))
					fd.Confidence = High
					fd.Why = ""
				}
			}
		}
		fd.Key = fn
		out = append(out, fd)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Confidence < out[j].Confidence })
	return out
}

// Formatting.

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// describeFuncs says where the waiters are: "in main.handleRequest", or
// "in main.a (3) and main.b (2)".
func describeFuncs(fs []FuncCount) string {
	switch len(fs) {
	case 0:
		return ""
	case 1:
		if fs[0].Func == "" {
			return ""
		}
		return "in " + fs[0].Func
	}
	var parts []string
	for i, f := range fs {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("%d other functions", len(fs)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", orUnknown(f.Func), f.Count))
	}
	return "in " + strings.Join(parts, ", ")
}

func funcList(fs []FuncCount) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf("%d in %s", f.Count, orUnknown(f.Func)))
	}
	return strings.Join(parts, ", ")
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown function"
	}
	return s
}

func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}

func fmtDuration(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}
