package diagnose

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
)

// Rules read from the Go runtime's view: an unrecovered panic (go-panic),
// a fatal error of the runtime (go-fatal) and a dump requested by another
// process (external-signal).
func init() {
	Register(Rule{Name: "go-panic", Run: goPanic})
	Register(Rule{Name: "go-fatal", Run: goFatal})
	Register(Rule{Name: "external-signal", Run: externalSignal})
}

// goLocation places a finding at a frame of the crash.
func goLocation(c *goruntime.Crash, fr *goruntime.Frame) *Location {
	l := &Location{TID: c.Thread.TID}
	if c.G != nil {
		l.Goroutine = c.G.ID
	}
	if fr != nil {
		l.Function, l.File, l.Line = fr.Func, fr.File, fr.Line
		l.PC = AddrPtr(fr.PC)
	}
	return l
}

func gname(g *goruntime.G) string {
	if g == nil {
		return "the system stack"
	}
	return fmt.Sprintf("goroutine %d", g.ID)
}

var reDigits = regexp.MustCompile(`0x[0-9a-fA-F]+|[0-9]+`)

// panicKey is a stable discriminator of a panic for signatures: the
// value's type for errors, the message with numbers blanked otherwise.
func panicKey(p *goruntime.Panic) string {
	v := p.Value
	if v.IsError && !strings.HasPrefix(v.Type, "runtime.") && v.Type != "*runtime.TypeAssertionError" {
		return v.Type
	}
	msg := reDigits.ReplaceAllString(p.Message(), "N")
	if len(msg) > 80 {
		msg = msg[:80]
	}
	return msg
}

func goPanic(f *Facts) []Finding {
	c := f.GoCrash()
	if c == nil || len(c.Panics) == 0 {
		return nil
	}
	p := c.Panics[len(c.Panics)-1]
	fr := p.Frame
	if c.Start < len(c.Frames) {
		fr = &c.Frames[c.Start]
	}
	fd := Finding{Class: GoPanic, Cause: true, Confidence: High, Key: panicKey(p), Location: goLocation(c, fr)}
	where := ""
	if fr != nil && fr.Func != "" {
		where = " in " + fr.Func
	}
	fd.Summary = fmt.Sprintf("%s panicked%s: %s", gname(c.G), where, p.Message())
	if c.Fault.Source == goruntime.SourceGSig {
		// A fault in Go code turned into a panic: the fault rules
		// (nil-deref, unmapped-access) say more; this one says what the
		// runtime printed.
		fd.Rank = 5
	}
	v := p.Value
	src := fmt.Sprintf("runtime._panic.arg of %s", gname(c.G))
	if p.Original {
		src = fmt.Sprintf("argument of runtime.gopanic in %s's stack (the runtime had replaced _panic.arg by its text to print it)", gname(c.G))
	}
	fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("panic value of type %s", v.Type), Addr: AddrPtr(p.Addr),
		Value: v.Text, Source: src})
	if v.Repr != "" && v.Repr != v.Text && v.Repr != fmt.Sprintf("%q", v.Text) {
		fd.Evidence = append(fd.Evidence, Evidence{What: "panic value", Addr: AddrPtr(v.Data), Value: v.Repr, Source: "runtime type descriptor " + v.Type})
	}
	for depth, w := range wrapChain(v) {
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("%swraps %s", strings.Repeat("  ", depth), w.Type),
			Addr: AddrPtr(w.Data), Value: w.Text, Source: "error chain read from memory"})
	}
	for _, prev := range c.Panics[:len(c.Panics)-1] {
		fd.Evidence = append(fd.Evidence, Evidence{What: "earlier panic in the chain", Addr: AddrPtr(prev.Addr),
			Value: prev.Message(), Source: "runtime._panic.link"})
	}
	if fr != nil {
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("panic raised in %s at %s:%d", fr.Func, fr.File, fr.Line),
			Addr: AddrPtr(fr.PC), Source: "stack of " + gname(c.G)})
	}
	if v.Err != nil {
		fd.Confidence, fd.Why = Medium, "the panic value could not be fully read: "+v.Err.Error()
	}
	return []Finding{fd}
}

// wrapChain flattens an error's wrapped errors, depth first.
func wrapChain(v *goruntime.Value) []*goruntime.Value {
	var out []*goruntime.Value
	var walk func(*goruntime.Value, int)
	walk = func(v *goruntime.Value, d int) {
		for _, w := range v.Wrapped {
			if len(out) == 16 {
				return
			}
			out = append(out, w)
			walk(w, d+1)
		}
	}
	walk(v, 0)
	return out
}

func goFatal(f *Facts) []Finding {
	c := f.GoCrash()
	if c == nil || c.Fatal == "" {
		return nil
	}
	r, _ := f.Go()
	fd := Finding{Class: GoFatal, Cause: true, Confidence: High, Key: reDigits.ReplaceAllString(c.Fatal, "N"),
		Location: goLocation(c, c.FatalFrame)}
	fd.Summary = "fatal error: " + c.Fatal
	if fr := c.FatalFrame; fr != nil {
		fd.Summary += " in " + fr.Func
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("runtime.throw/fatal called from %s at %s:%d", fr.Func, fr.File, fr.Line),
			Addr: AddrPtr(fr.PC), Value: c.Fatal, Source: "the string in the throw closure's funcval on the throwing frame"})
	}
	if bl := strings.TrimSpace(r.Backlog); bl != "" {
		fd.Evidence = append(fd.Evidence, Evidence{What: "the runtime printed before failing", Value: lastLines(bl, 4),
			Source: "runtime.printBacklog"})
	}
	switch {
	case strings.HasPrefix(c.Fatal, "concurrent map"):
		concurrentMap(r, c, &fd)
	case strings.Contains(c.Fatal, "deadlock"):
		deadlock(r, &fd)
	case c.Fatal == "stack overflow":
		stackOverflowEvidence(r, c, &fd)
		fd.Rank = 5 // the stack-overflow rule is the cause; this one adds the runtime's words
	case strings.Contains(c.Fatal, "out of memory"):
		outOfMemory(r, c, &fd)
	}
	return []Finding{fd}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// isMapCode reports the runtime's map implementation.
func isMapCode(fn string) bool {
	return strings.HasPrefix(fn, "runtime.map") || strings.HasPrefix(fn, "internal/runtime/maps.") ||
		strings.HasPrefix(fn, "runtime.(*hmap)") || strings.HasPrefix(fn, "runtime.(*bmap)")
}

// mapFrame returns the outermost map-code frame of a stack (the entry
// point the program called) and the user frame that called it, and the
// map it works on, read from its arguments (runtime.mapassign(t, m, key):
// the second word; (*Map) methods: the receiver).
func mapFrame(r *goruntime.Runtime, frames []goruntime.Frame) (entry, caller *goruntime.Frame, m uint64) {
	for i := range frames {
		if !isMapCode(frames[i].Func) {
			continue
		}
		j := i
		for j+1 < len(frames) && isMapCode(frames[j+1].Func) {
			j++
		}
		entry = &frames[j]
		if j+1 < len(frames) {
			caller = &frames[j+1]
		}
		for k := j; k >= i; k-- {
			if frames[k].Inlined {
				continue
			}
			args, _ := r.FrameArgs(&frames[k])
			ptrs := goruntime.PointerArgs(args)
			idx := 1
			if strings.Contains(frames[k].Func, "(*Map)") || strings.Contains(frames[k].Func, "(*hmap)") {
				idx = 0
			}
			if len(ptrs) > idx && ptrs[idx] != 0 {
				m = ptrs[idx]
				break
			}
		}
		return entry, caller, m
	}
	return nil, nil, 0
}

// concurrentMap names the goroutines inside map code when the runtime
// detected the race, and the map they share.
func concurrentMap(r *goruntime.Runtime, c *goruntime.Crash, fd *Finding) {
	var thrower uint64
	if c.G != nil {
		_, caller, m := mapFrame(r, r.Stack(c.G, 64).Frames)
		thrower = m
		if m != 0 {
			what := fmt.Sprintf("%s detected the race on map %#x", gname(c.G), m)
			if caller != nil {
				what += " in " + caller.Func
			}
			fd.Evidence = append(fd.Evidence, Evidence{What: what, Addr: AddrPtr(m), Source: "map argument of the map function in " + gname(c.G) + "'s frame"})
		}
	}
	var racers []string
	for _, g := range r.Gs {
		if g == c.G {
			continue
		}
		st := r.Stack(g, 64)
		entry, caller, m := mapFrame(r, st.Frames)
		if entry == nil {
			continue
		}
		same := ""
		switch {
		case m != 0 && m == thrower:
			same = " on the same map"
		case m != 0 && thrower != 0:
			same = fmt.Sprintf(" on another map %#x", m)
		}
		who := fmt.Sprintf("goroutine %d [%s] in %s", g.ID, g.Header(), entry.Func)
		if caller != nil {
			who += fmt.Sprintf(" called from %s at %s:%d", caller.Func, caller.File, caller.Line)
		}
		fd.Evidence = append(fd.Evidence, Evidence{What: who + same, Addr: AddrPtr(m), Source: "stack of goroutine " + fmt.Sprint(g.ID)})
		if m == thrower {
			racers = append(racers, fmt.Sprintf("goroutine %d", g.ID))
		}
	}
	for _, th := range c.AlsoDying {
		if th.Goroutine != nil {
			fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("goroutine %d on thread %d hit the same fatal error at the same time", th.Goroutine.ID, th.TID),
				Source: "m.dying of M" + fmt.Sprint(th.M.ID)})
		}
	}
	if len(racers) > 0 && thrower != 0 {
		fd.Summary += fmt.Sprintf(": %s was in map code on the same map %#x", strings.Join(racers, ", "), thrower)
	} else if thrower != 0 {
		fd.Summary += fmt.Sprintf(" on map %#x (the other writer had already left map code)", thrower)
	}
}

// blockingObject is what a parked goroutine waits on: the first pointer
// argument of the runtime or sync frame that parked it (a channel, a
// mutex, a wait group).
func blockingObject(r *goruntime.Runtime, frames []goruntime.Frame) (obj uint64, via string, user *goruntime.Frame) {
	for i := range frames {
		fr := &frames[i]
		if !r.IsStdlib(fr.Func) {
			return obj, via, fr
		}
		if fr.Inlined || strings.HasPrefix(fr.Func, "runtime.gopark") {
			continue
		}
		if args, err := r.FrameArgs(fr); err == nil {
			if p := goruntime.PointerArgs(args); len(p) > 0 && p[0] != 0 {
				obj, via = p[0], fr.Func
			}
		}
	}
	return obj, via, nil
}

// deadlock says what every goroutine waits on, the first
// maxDeadlockListed one by one.
func deadlock(r *goruntime.Runtime, fd *Finding) {
	waiting := 0
	for _, g := range r.Gs {
		if g.IsSystem() {
			continue
		}
		if waiting++; waiting > maxDeadlockListed {
			continue
		}
		st := r.Stack(g, 64)
		obj, via, user := blockingObject(r, st.Frames)
		what := fmt.Sprintf("goroutine %d [%s]", g.ID, g.Header())
		if user != nil {
			what += fmt.Sprintf(" in %s at %s:%d", user.Func, user.File, user.Line)
		}
		if obj != 0 {
			what += fmt.Sprintf(", waiting on %#x (argument of %s)", obj, via)
		}
		ev := Evidence{What: what, Source: "stack and wait reason of goroutine " + fmt.Sprint(g.ID)}
		if obj != 0 {
			ev.Addr = AddrPtr(obj)
		}
		fd.Evidence = append(fd.Evidence, ev)
	}
	if more := waiting - maxDeadlockListed; more > 0 {
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("%s more, grouped by stack in the goroutine buckets", plural(more, "goroutine")),
			Source: "allgs"})
	}
	fd.Summary += fmt.Sprintf(": all %d goroutines of the program are blocked", waiting)
}

// maxDeadlockListed bounds the goroutines a deadlock finding lists one
// by one.
const maxDeadlockListed = 32

// recursionCycle finds the shortest sequence of functions that repeats
// at least three times in a row from the innermost frames.
func recursionCycle(frames []goruntime.Frame) ([]string, int) {
	names := make([]string, 0, len(frames))
	for _, f := range frames {
		if strings.HasPrefix(f.Func, "runtime.") {
			if len(names) == 0 {
				continue
			}
			break
		}
		names = append(names, f.Func)
	}
	for period := 1; period <= 16 && 3*period <= len(names); period++ {
		reps := 1
		for i := period; i+period <= len(names); i += period {
			ok := true
			for k := 0; k < period; k++ {
				if names[i+k] != names[k] {
					ok = false
					break
				}
			}
			if !ok {
				break
			}
			reps++
		}
		if reps >= 3 {
			return names[:period], reps
		}
	}
	return nil, 0
}

func stackOverflowEvidence(r *goruntime.Runtime, c *goruntime.Crash, fd *Finding) {
	g := c.G
	if g == nil {
		return
	}
	st := r.Stack(g, 0)
	cycle, reps := recursionCycle(st.Frames)
	if cycle == nil {
		return
	}
	more := ""
	if st.Err != nil {
		more = " (the unwinder stopped there; the stack is deeper)"
	}
	fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("recursion: %s repeats %d times in goroutine %d's innermost frames%s",
		strings.Join(cycle, " → "), reps, g.ID, more), Addr: AddrPtr(g.StackLo),
		Value: fmt.Sprintf("stack [%#x, %#x), %d bytes", g.StackLo, g.StackHi, g.StackHi-g.StackLo), Source: "stack of goroutine " + fmt.Sprint(g.ID)})
	fd.Summary += fmt.Sprintf(": %s recursed without end in goroutine %d", cycle[0], g.ID)
}

// outOfMemory reports the allocation that failed and the heap's size.
func outOfMemory(r *goruntime.Runtime, c *goruntime.Crash, fd *Finding) {
	// What was asked, at each level of the allocation that failed; only
	// arguments the frame still holds (not stale spill slots).
	asked := []struct {
		fn, what string
		arg      int
		scale    uint64
	}{
		{"runtime.makeslice", "elements asked of make", 1, 1},
		{"runtime.growslice", "elements asked of append", 1, 1},
		{"runtime.mallocgc", "bytes asked of runtime.mallocgc", 0, 1},
		{"runtime.sysMap", "bytes the runtime tried to map (runtime.sysMap)", 1, 1},
		{"runtime.sysMapOS", "bytes the runtime tried to map (runtime.sysMapOS)", 1, 1},
		{"runtime.(*mheap).grow", "pages the heap tried to grow by", 1, 1},
	}
	for _, a := range asked {
		for i := range c.Frames {
			fr := &c.Frames[i]
			if fr.Func != a.fn {
				continue
			}
			args, _ := r.FrameArgs(fr)
			var words []goruntime.Arg
			for _, x := range args {
				if x.Mark == "" {
					words = append(words, x)
				}
			}
			if a.arg < len(words) && !words[a.arg].Stale {
				fd.Evidence = append(fd.Evidence, Evidence{What: a.what, Addr: AddrPtr(fr.PC),
					Value: fmt.Sprint(words[a.arg].Word * a.scale), Source: "arguments of " + fr.Func})
			}
			break
		}
	}
	for _, h := range r.HeapTotals() {
		fd.Evidence = append(fd.Evidence, Evidence{What: h.Name, Value: fmt.Sprintf("%d bytes", h.Bytes), Source: h.Source})
	}
}

// externalSignal reports a dump requested by another process: a signal
// sent with kill or sigqueue by another pid (an operator's SIGQUIT, a
// watchdog's SIGABRT), which is not a crash. The goroutines show what the
// process was doing.
func externalSignal(f *Facts) []Finding {
	var signo coredump.Signal
	var code int32
	var pid int32
	var uid uint32
	var src string
	var c *goruntime.Crash
	if c = f.GoCrash(); c != nil {
		if c.Kind != goruntime.CrashExternal {
			return nil
		}
		signo, code, pid, uid, src = c.Fault.Signo, c.Fault.Code, c.Fault.PID, c.Fault.UID, string(c.Fault.Source)
	} else if si := f.Proc.Signal; si != nil && si.Sent() && si.PID != 0 && int(si.PID) != f.Proc.PID &&
		(si.Code == coredump.SI_USER || si.Code == coredump.SI_QUEUE) {
		signo, code, pid, uid, src = si.Signo, si.Code, si.PID, si.UID, "NT_SIGINFO"
	} else {
		return nil
	}
	fd := Finding{Class: ExternalSignal, Cause: true, Confidence: High, Key: signo.String(),
		Summary: fmt.Sprintf("%s sent by process %d (uid %d): a dump requested from outside, not a crash", signo, pid, uid)}
	if pid == 1 {
		fd.Summary += " (pid 1 is init/systemd: a watchdog)"
	}
	fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("siginfo: %s, si_code %s, sender pid %d uid %d", signo, coredump.CodeName(signo, code), pid, uid),
		Value: coredump.CodeName(signo, code), Source: src})
	if c != nil {
		fd.Location = &Location{TID: c.Thread.TID}
		r, _ := f.Go()
		hangEvidence(r, &fd)
	}
	return []Finding{fd}
}

// hangEvidence summarises what the goroutines were doing, biggest
// groups first.
func hangEvidence(r *goruntime.Runtime, fd *Finding) {
	buckets := r.Buckets(0)
	sort.SliceStable(buckets, func(i, j int) bool { return len(buckets[i].Goroutines) > len(buckets[j].Goroutines) })
	n := 0
	for _, b := range buckets {
		if b.System || n == 5 {
			continue
		}
		user := ""
		if fr := programFrame(r, b.Frames); fr != nil {
			user = fmt.Sprintf(" in %s at %s:%d", fr.Func, fr.File, fr.Line)
		}
		fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("%d goroutine(s) [%s]%s", len(b.Goroutines), b.State, user),
			Source: "goroutine stacks"})
		n++
	}
}

// programFrame is the innermost frame of the program's own code, else the
// innermost frame outside the runtime.
func programFrame(r *goruntime.Runtime, frames []goruntime.Frame) *goruntime.Frame {
	for i := range frames {
		if frames[i].Func != "" && !r.IsStdlib(frames[i].Func) {
			return &frames[i]
		}
	}
	for i := range frames {
		if frames[i].Func != "" && !strings.HasPrefix(frames[i].Func, "runtime.") && !strings.HasPrefix(frames[i].Func, "internal/") {
			return &frames[i]
		}
	}
	return nil
}
