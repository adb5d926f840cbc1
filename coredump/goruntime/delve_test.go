package goruntime

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-delve/delve/pkg/proc"
)

// Delve's view of the same core is the second oracle: its goroutine list
// and its DWARF-based unwinder. Known defects of Delve v1.27.2 are
// accounted for, not copied:
//   - on Go 1.26 it lists the extra M's g parked in _Gdeadextra (status
//     11, Go 1.26 src/runtime/runtime2.go), which is no goroutine; we do
//     not count it. Its G status constants stop at Gcopystack (8) and
//     GoroutinesInfo drops only Gdead (Delve v1.27.2
//     pkg/proc/variables.go).
//   - it cannot unwind C frames inside shared libraries (libc): its core
//     backend loads no shared library (only pkg/proc/native and gdbserial
//     call linutil.ElfUpdateSharedObjects) and libc carries no DWARF, so
//     its stack repeats one unknown pc there. We compare up to the first
//     frame outside the executable.
//   - after runtime.asmcgocall it shows a bogus 0x0 frame and loses the
//     goroutine's frames; we compare up to asmcgocall.
//   - it unwinds a g0 stack without jumping to the goroutine at
//     runtime.systemstack/morestack, and stops at mcall: we compare the
//     frames before such a jump.
//   - through the runtime's signal frames it drops frames: the
//     runtime.sigtramp frame, the frame a signal interrupted when it is a
//     leaf (runtime.dieFromSignal above runtime.raise), the caller of the
//     frame sigpanic was injected into (main.main above the faulting
//     method). Threads are therefore checked for Delve's frames being a
//     subsequence of ours.
//   - past runtime.mstart (a top frame, where the runtime's traceback
//     stops) it continues into runtime.clone; we stop as the runtime does.

// delveDeadExtra is _Gdeadextra of Go 1.26 (src/runtime/runtime2.go), a
// status Delve v1.27.2 does not filter.
const delveDeadExtra = 11

func TestGoroutineCountMatchesDelve(t *testing.T) {
	forEachCore(t, func(t *testing.T, l *loaded) {
		dt, err := l.proc.Delve()
		if err != nil {
			t.Skipf("Delve cannot open the core: %v", err)
		}
		gs, _, err := proc.GoroutinesInfo(dt, 0, 0)
		if err != nil {
			t.Skipf("Delve cannot list goroutines: %v", err)
		}
		n := 0
		for _, g := range gs {
			if g.ID == 0 || l.rt.Version.AtLeast(26) && g.Status == delveDeadExtra {
				continue
			}
			n++
			if l.rt.Goroutine(g.ID) == nil {
				t.Errorf("Delve lists goroutine %d (status %d), we do not", g.ID, g.Status)
			}
		}
		if n != len(l.rt.Gs) {
			t.Errorf("Delve counts %d goroutines, we count %d", n, len(l.rt.Gs))
		}
	})
}

// delveNames returns the function names of Delve's frames, stopping at the
// first frame Delve is known to get wrong.
func delveNames(frames []proc.Stackframe) []string {
	var out []string
	for _, f := range frames {
		if f.Call.Fn == nil || f.Err != nil {
			break
		}
		name := strings.TrimPrefix(f.Call.Fn.Name, "C.")
		out = append(out, name)
		switch name {
		case "runtime.asmcgocall", "runtime.systemstack", "runtime.morestack", "runtime.mcall", "runtime.cgocallback":
			return out
		}
	}
	return out
}

func ourNames(frames []Frame) []string {
	var out []string
	for _, f := range frames {
		if f.Kind == FrameSignal {
			continue
		}
		out = append(out, f.Func)
	}
	return out
}

// containsRun reports whether want appears as a contiguous run of have.
func containsRun(have, want []string) bool {
	for s := 0; s+len(want) <= len(have); s++ {
		ok := true
		for i := range want {
			if have[s+i] != want[i] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// subsequence reports whether want appears in have in order.
func subsequence(have, want []string) bool {
	i := 0
	for _, h := range have {
		if i < len(want) && h == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestStacksMatchDelve(t *testing.T) {
	forEachCore(t, func(t *testing.T, l *loaded) {
		if !l.rt.Version.AtLeast(25) {
			t.Skip("Delve v1.27 supports Go 1.25 and later")
		}
		dt, err := l.proc.Delve()
		if err != nil {
			t.Skipf("Delve cannot open the core: %v", err)
		}
		gs, _, err := proc.GoroutinesInfo(dt, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, dg := range gs {
			g := l.rt.Goroutine(dg.ID)
			if g == nil || dg.Thread != nil {
				continue // running goroutines are compared as threads
			}
			df, err := proc.GoroutineStacktrace(dt, dg, 64, 0)
			if err != nil {
				t.Errorf("Delve: goroutine %d: %v", dg.ID, err)
				continue
			}
			want := delveNames(df)
			have := ourNames(l.rt.Stack(g, 64).Frames)
			if len(want) == 0 || !containsRun(have, want) {
				t.Errorf("goroutine %d: Delve %q, we %q", dg.ID, want, have)
			}
		}
		for _, th := range l.rt.Threads() {
			dth, ok := dt.FindThread(th.TID)
			if !ok {
				t.Errorf("Delve has no thread %d", th.TID)
				continue
			}
			df, err := proc.ThreadStacktrace(dt, dth, 64)
			if err != nil {
				continue
			}
			want := delveNames(df)
			// Delve names the frames of shared libraries not at all.
			for i, n := range want {
				if n == "" {
					want = want[:i]
					break
				}
			}
			for i, n := range want {
				if n == "runtime.clone" {
					want = want[:i] // and the garbage Delve finds past it
					break
				}
			}
			have := ourNames(th.Stack.Frames)
			if len(want) > 0 && !subsequence(have, want) {
				t.Errorf("thread %d: Delve %s\nwe %s", th.TID, strings.Join(want, " < "), strings.Join(have, " < "))
			}
		}
	})
}

// TestFixtureThreadFacts checks what the fixtures say about their own
// threads (FACT lines): states, LockOSThread, the crashing C thread, the
// sender of an external signal.
func TestFixtureThreadFacts(t *testing.T) {
	forEachCore(t, func(t *testing.T, l *loaded) {
		o := l.crash.Oracle
		exp := l.crash.Fixture.Spec.Expect
		tidOf := func(key string) int {
			v := o.Facts[key]
			if len(v) == 0 {
				t.Fatalf("the fixture printed no FACT %s", key)
			}
			var tid int
			fmt.Sscan(v[0], &tid)
			return tid
		}
		if states, ok := exp["thread_states"].(map[string]any); ok {
			for key, want := range states {
				th := l.rt.Thread(tidOf(key))
				if th == nil {
					t.Errorf("thread %s=%d not in the table", key, tidOf(key))
					continue
				}
				if th.State.String() != want {
					t.Errorf("thread %s=%d: state %s, want %s (frames %s)", key, th.TID, th.State, want, dumpFrames(th.PreSignalFrames()))
				}
			}
		}
		if key, ok := exp["locked"].(string); ok {
			th := l.rt.Thread(tidOf(key))
			if th == nil || th.Goroutine == nil || th.Goroutine.LockedM() != th.M || th.M.LockedG != th.Goroutine.Addr {
				t.Errorf("thread %s: its goroutine is not locked to it (%+v)", key, th)
			}
		}
		c, _ := l.rt.Crash()
		if _, ok := o.Facts["crash_tid"]; ok {
			if c.Thread.TID != tidOf("crash_tid") {
				t.Errorf("crashing thread %d, the fixture crashed on %d", c.Thread.TID, tidOf("crash_tid"))
			}
			if c.Thread.State != StateNonGo || c.G != nil {
				t.Errorf("crash on a C thread: state %s, goroutine %v", c.Thread.State, c.G)
			}
		}
		if want, ok := exp["addr"].(string); ok && o.Signal == "" {
			if got := fmt.Sprintf("%#x", c.Fault.Addr); !c.Fault.HasAddr() || got != want {
				t.Errorf("fault address %s, want %s", got, want)
			}
			if want := exp["fault_signal"]; want != nil && c.Fault.Signo.String() != want {
				t.Errorf("signal %s, want %s", c.Fault.Signo, want)
			}
			if c.Fault.Source != SourceSigframe {
				t.Errorf("fault read from %s, want the kernel's signal frame", c.Fault.Source)
			}
		}
		if _, ok := o.Facts["sender_pid"]; ok {
			if c.Kind != CrashExternal || int(c.Fault.PID) != tidOf("sender_pid") {
				t.Errorf("crash %s sent by %d, the fixture's killer was %d", c.Kind, c.Fault.PID, tidOf("sender_pid"))
			}
			if want := exp["signal"]; c.Fault.Signo.String() != want {
				t.Errorf("signal %s, want %s", c.Fault.Signo, want)
			}
		}
	})
}
