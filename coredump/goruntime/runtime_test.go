package goruntime

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
)

// Toolchains the tests run every fixture with: the default one and the
// releases issue 3 requires, plus the other supported releases unless
// -short.
var (
	requiredVariants = []fixtures.Variant{{}, {Go: "go1.22.12"}, {Go: "go1.24.13"}}
	extraVariants    = []fixtures.Variant{{Go: "go1.21.13"}, {Go: "go1.23.12"}, {Go: "go1.25.14"}}
)

func variants() []fixtures.Variant {
	if testing.Short() {
		return requiredVariants
	}
	return append(append([]fixtures.Variant{}, requiredVariants...), extraVariants...)
}

type loaded struct {
	crash *fixtures.Crash
	proc  *coredump.Process
	rt    *Runtime
}

// loadFixture crashes the fixture for v (cached) and reads its runtime view.
func loadFixture(t testing.TB, name string, v fixtures.Variant) *loaded {
	t.Helper()
	f, err := fixtures.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(v)
	if err != nil {
		t.Fatal(err)
	}
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatalf("open core: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	r, err := Load(p)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return &loaded{crash: c, proc: p, rt: r}
}

// goFixtures lists the fixtures with a Go runtime.
func goFixtures(t testing.TB) []string {
	names, err := fixtures.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		f, err := fixtures.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		if f.Spec.Lang != fixtures.LangC && !f.Spec.Live {
			out = append(out, n)
		}
	}
	return out
}

// forEachCore runs fn on every Go fixture's core for every variant (the
// benchmark's large core has its own tests).
func forEachCore(t *testing.T, fn func(t *testing.T, l *loaded)) {
	for _, v := range variants() {
		for _, name := range goFixtures(t) {
			if name == manyFixture {
				continue
			}
			t.Run(v.String()+"/"+name, func(t *testing.T) {
				fn(t, loadFixture(t, name, v))
			})
		}
	}
}

// TestPclntabMatchesSymbols checks the pclntab reader against the ELF
// symbol table: every Go function symbol is a function of the table at
// the same address, with the same name and the next function's entry as
// its end.
func TestPclntabMatchesSymbols(t *testing.T) {
	forEachCore(t, func(t *testing.T, l *loaded) {
		im := l.proc.Exe
		n := 0
		for _, s := range im.Symbols() {
			if s.Size == 0 || !strings.Contains(s.Name, ".") || s.Addr < l.rt.Funcs.MinPC || s.Addr >= l.rt.Funcs.MaxPC {
				continue
			}
			f, ok := l.rt.Funcs.FuncAt(s.Addr)
			if !ok || f.Entry != s.Addr {
				continue // C code and linker symbols between Go functions
			}
			n++
			// The linker writes the middle dot of generated names as '.'.
			if strings.ReplaceAll(f.Name(), "·", ".") != s.Name && !strings.HasSuffix(s.Name, ".abi0") {
				t.Errorf("function at %#x: pclntab says %q, symtab %q", s.Addr, f.Name(), s.Name)
			}
			if f.End() < s.Addr+s.Size {
				t.Errorf("%s: pclntab end %#x before symbol end %#x", s.Name, f.End(), s.Addr+s.Size)
			}
		}
		if n < 500 {
			t.Errorf("only %d Go functions matched the symbol table", n)
		}
		if _, ok := l.rt.Funcs.FuncByName("main.main"); !ok {
			t.Error("main.main not in the pclntab")
		}
	})
}

// TestStacksMatchRuntimeTraceback compares every stack the runtime printed
// at the crash (function, file, line, and pc and sp where printed) with
// the unwinder's: goroutines, the Ms it interrupted with SIGQUIT, and the
// system stack of a throw.
func TestStacksMatchRuntimeTraceback(t *testing.T) {
	forEachCore(t, func(t *testing.T, l *loaded) {
		blocks := parseTraceback(l.crash.Stderr)
		if len(blocks) == 0 {
			if _, ok := l.crash.Oracle.Facts["crash_tid"]; ok {
				t.Skip("the crash on a C thread left the runtime nothing to print")
			}
			t.Fatal("no traceback in the runtime's output")
		}
		checked := 0
		for _, b := range blocks {
			switch {
			case b.Unavailable:
				continue
			case b.Goroutine > 0:
				g := l.rt.Goroutine(b.Goroutine)
				if g == nil {
					t.Errorf("goroutine %d printed by the runtime is not in allgs", b.Goroutine)
					continue
				}
				st := l.rt.Stack(g, 0)
				if b.Elided > 0 {
					if err := matchElided(st.Frames, b); err != nil {
						t.Errorf("goroutine %d [%s]: %v", b.Goroutine, b.State, err)
					}
				} else if err := matchSuffix(st.Frames, b.Frames, !g.Running()); err != nil {
					t.Errorf("goroutine %d [%s]: %v\nours:\n%s", b.Goroutine, b.State, err, dumpFrames(st.Frames))
				} else if err := matchArgs(l.rt, st.Frames, b.Frames); err != nil {
					t.Errorf("goroutine %d: %v", b.Goroutine, err)
				}
				if b.State != g.Header() {
					t.Errorf("goroutine %d: runtime printed [%s], we say [%s]", b.Goroutine, b.State, g.Header())
				}
				if b.CreatedBy != "" {
					cb := l.rt.CreatedBy(g)
					if cb == nil || PrintName(cb.Func) != b.CreatedBy || g.ParentID != b.CreatorG {
						t.Errorf("goroutine %d: created by %s in goroutine %d, we say %v in %d", b.Goroutine, b.CreatedBy, b.CreatorG, cb, g.ParentID)
					}
				}
				if b.Locked != (g.LockedMAddr != 0) {
					t.Errorf("goroutine %d: locked to thread %v, we say %v", b.Goroutine, b.Locked, g.LockedMAddr != 0)
				}
				checked++
			case b.Goroutine == 0 && b.M >= 0:
				m := l.rt.MByID(int64(b.M))
				th := threadOfM(l.rt, m)
				if th == nil {
					t.Errorf("M%d printed by the runtime has no thread in the core", b.M)
					continue
				}
				// The runtime does not follow a systemstack switch when it
				// prints an M's g0 stack: the printed frames are a prefix.
				frames := afterOutermostSignal(th.Stack.Frames)
				if err := matchPrefix(frames, trimJumps(b.Frames)); err != nil {
					t.Errorf("M%d (thread %d) g0 stack: %v\nours:\n%s", b.M, th.TID, err, dumpFrames(frames))
				}
				checked++
			case b.Goroutine < 0:
				var crash *Thread
				for _, th := range l.rt.Threads() {
					if th.Crashing {
						crash = th
					}
				}
				if err := matchRun(crash.Stack.Frames, trimJumps(b.Frames)); err != nil {
					t.Errorf("runtime stack of thread %d: %v\nours:\n%s", crash.TID, err, dumpFrames(crash.Stack.Frames))
				}
				checked++
			}
		}
		if checked == 0 {
			t.Error("no printed stack could be checked")
		}
	})
}

func threadOfM(r *Runtime, m *M) *Thread {
	if m == nil {
		return nil
	}
	for _, th := range r.Threads() {
		if th.M == m {
			return th
		}
	}
	return nil
}

func afterOutermostSignal(frames []Frame) []Frame {
	for i := len(frames) - 1; i >= 0; i-- {
		if frames[i].Kind == FrameSignal {
			return frames[i+1:]
		}
	}
	return frames
}

// frameMatches compares one of our frames with a printed one.
func frameMatches(f Frame, p tbFrame) bool {
	if PrintName(f.Func) != p.Func || f.File != p.File || f.Line != p.Line || f.Inlined != p.Inlined {
		return false
	}
	// The runtime prints a g0 stack without jumping to the goroutine:
	// its systemstack frame has the g0 sp where ours has the goroutine's.
	return p.PC == 0 || (f.PC == p.PC && (f.SP == p.SP || p.Func == "runtime.systemstack"))
}

// trimJumps drops the runtime.morestack frame that ends a printed g0
// stack: the unwinder, like the runtime's when it follows the goroutine,
// continues at the goroutine's saved context instead.
func trimJumps(printed []tbFrame) []tbFrame {
	if n := len(printed); n > 0 && printed[n-1].Func == "runtime.morestack" {
		return printed[:n-1]
	}
	return printed
}

// matchArgs compares the printed arguments of non-inlined frames.
func matchArgs(r *Runtime, ours []Frame, printed []tbFrame) error {
	off := len(ours) - len(printed)
	for i, p := range printed {
		if p.PC == 0 || p.Inlined {
			continue
		}
		f := ours[off+i]
		args, err := r.FrameArgs(&f)
		if err != nil {
			return err
		}
		if got := FormatArgs(args); got != p.Args {
			return fmt.Errorf("%s: runtime printed arguments (%s), we read (%s)", p.Func, p.Args, got)
		}
	}
	return nil
}

// matchSuffix checks that the printed frames are the last frames of ours
// (all of them when exact).
func matchSuffix(ours []Frame, printed []tbFrame, exact bool) error {
	if len(printed) > len(ours) || exact && len(printed) != len(ours) {
		return fmt.Errorf("runtime printed %d frames, we have %d", len(printed), len(ours))
	}
	off := len(ours) - len(printed)
	for i, p := range printed {
		if !frameMatches(ours[off+i], p) {
			return fmt.Errorf("frame %d: runtime printed %s at %s:%d pc=%#x sp=%#x, we have %s at %s:%d pc=%#x sp=%#x",
				i, p.Func, p.File, p.Line, p.PC, p.SP, ours[off+i].Func, ours[off+i].File, ours[off+i].Line, ours[off+i].PC, ours[off+i].SP)
		}
	}
	return nil
}

// matchPrefix checks that the printed frames are the first frames of ours.
func matchPrefix(ours []Frame, printed []tbFrame) error {
	if len(printed) > len(ours) {
		return fmt.Errorf("runtime printed %d frames, we have %d", len(printed), len(ours))
	}
	for i, p := range printed {
		if !frameMatches(ours[i], p) {
			return fmt.Errorf("frame %d: runtime printed %s at %s:%d pc=%#x sp=%#x, we have %s at %s:%d pc=%#x sp=%#x",
				i, p.Func, p.File, p.Line, p.PC, p.SP, ours[i].Func, ours[i].File, ours[i].Line, ours[i].PC, ours[i].SP)
		}
	}
	return nil
}

// matchElided checks a printed stack whose middle the runtime elided: the
// inner frames must be a run of ours starting at the first printed frame.
func matchElided(ours []Frame, b *tbBlock) error {
	for s := range ours {
		if frameMatches(ours[s], b.Frames[0]) {
			return matchPrefix(ours[s:], b.Frames[:b.Inner])
		}
	}
	return fmt.Errorf("the first printed frame %s pc=%#x sp=%#x is not in our stack", b.Frames[0].Func, b.Frames[0].PC, b.Frames[0].SP)
}

// matchRun checks that the printed frames appear as a contiguous run.
func matchRun(ours []Frame, printed []tbFrame) error {
	for s := 0; s+len(printed) <= len(ours); s++ {
		ok := true
		for i, p := range printed {
			if !frameMatches(ours[s+i], p) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("the %d printed frames (from %s) are not a run of ours", len(printed), printed[0].Func)
}

func dumpFrames(fs []Frame) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s (inlined=%v) %s:%d pc=%#x sp=%#x\n", f.Func, f.Inlined, f.File, f.Line, f.PC, f.SP)
	}
	return b.String()
}

// TestCrashMatchesOracle checks the crash site against what the runtime
// printed: the signal, fault address and pc, the M, the goroutine, the
// panic and fatal error texts.
func TestCrashMatchesOracle(t *testing.T) {
	forEachCore(t, func(t *testing.T, l *loaded) {
		o := l.crash.Oracle
		c, err := l.rt.Crash()
		if err != nil {
			t.Fatal(err)
		}
		if o.Signal != "" {
			if c.Fault.Signo.String() != o.Signal {
				t.Errorf("signal %s, runtime printed %s", c.Fault.Signo, o.Signal)
			}
			if int64(c.Fault.Code) != o.SigCode {
				t.Errorf("si_code %d, runtime printed %d", c.Fault.Code, o.SigCode)
			}
			if o.HasAddr && (!c.Fault.HasAddr() || c.Fault.Addr != o.Addr) {
				t.Errorf("fault address %#x (known %v), runtime printed %#x", c.Fault.Addr, c.Fault.HasAddr(), o.Addr)
			}
			if c.Fault.PC != o.PC {
				t.Errorf("faulting pc %#x, runtime printed %#x", c.Fault.PC, o.PC)
			}
			if o.InCgo != c.InCgo {
				t.Errorf("in cgo %v, runtime printed %v", c.InCgo, o.InCgo)
			}
			want := CrashFault
			if _, ok := l.crash.Oracle.Facts["sender_pid"]; ok {
				want = CrashExternal
			}
			if c.Kind != want {
				t.Errorf("crash kind %s, want %s", c.Kind, want)
			}
		}
		// m= of the signal line, else of the first goroutine's header.
		wantM := o.SigM
		if wantM < 0 && !o.SystemStack {
			wantM = o.GoroutineM
		}
		// When several Ms die at once the runtime prints the first to
		// take the print lock; the crash is the one that raised.
		crashMs := map[int64]*G{}
		if c.M != nil {
			crashMs[c.M.ID] = c.G
		}
		for _, th := range c.AlsoDying {
			crashMs[th.M.ID] = th.Goroutine
		}
		if _, ok := crashMs[int64(wantM)]; wantM >= 0 && !ok {
			t.Errorf("crashing M %v (also dying %v), runtime printed m=%d", c.M, c.AlsoDying, wantM)
		}
		if c.Thread == nil || c.M != nil && c.Thread.TID != int(c.M.ProcID) {
			t.Errorf("crashing thread %v does not run the crashing M", c.Thread)
		}
		switch {
		case o.SystemStack:
			// A throw on the system stack: on behalf of the running
			// goroutine (stack growth) or of none (the scheduler).
			if o.GoroutineState == "running" {
				if c.G == nil || c.G.ID != o.Goroutine {
					t.Errorf("crashing goroutine %v, runtime printed running goroutine %d after the system stack", c.G, o.Goroutine)
				}
			} else if c.G != nil {
				t.Errorf("a throw on the system stack with no goroutine running, but goroutine %d is said to crash", c.G.ID)
			}
		case o.Goroutine != 0:
			g := c.G
			if gm, ok := crashMs[int64(o.GoroutineM)]; ok && len(c.AlsoDying) > 0 {
				g = gm
			}
			// Go before 1.23 prints no m= in goroutine headers: any of
			// the dying Ms' goroutines may be the one printed first.
			for _, th := range c.AlsoDying {
				if o.GoroutineM < 0 && th.Goroutine != nil && th.Goroutine.ID == o.Goroutine {
					g = th.Goroutine
				}
			}
			if g == nil || g.ID != o.Goroutine {
				t.Errorf("crashing goroutine %v, runtime printed goroutine %d first", c.G, o.Goroutine)
			}
		}
		var msgs []string
		for _, p := range c.Panics {
			msgs = append(msgs, p.Message())
		}
		if strings.Join(msgs, "\n") != strings.Join(o.Panic, "\n") {
			t.Errorf("panics %q, runtime printed %q", msgs, o.Panic)
		}
		if c.Fatal != o.Fatal {
			t.Errorf("fatal error %q, runtime printed %q", c.Fatal, o.Fatal)
		}
		exp := l.crash.Fixture.Spec.Expect
		if want, ok := exp["panic_type"].(string); ok {
			if len(c.Panics) == 0 || c.Panics[len(c.Panics)-1].Value.Type != want {
				t.Errorf("panic value type: want %s, got %+v", want, c.Panics)
			}
		}
		if want, ok := exp["wrapped"].([]any); ok && len(c.Panics) > 0 {
			var got []string
			for v := c.Panics[len(c.Panics)-1].Value; v != nil && len(v.Wrapped) > 0; v = v.Wrapped[0] {
				got = append(got, v.Wrapped[0].Type)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("wrapped error chain %v, want %v", got, want)
			}
		}
		if want, ok := exp["frame"].(string); ok {
			if c.Start >= len(c.Frames) || c.Frames[c.Start].Func != want {
				got := ""
				if c.Start < len(c.Frames) {
					got = c.Frames[c.Start].Func
				}
				t.Errorf("story starts at %q, want %q", got, want)
			}
		}
		if want, ok := exp["fault_function"].(string); ok && c.Start < len(c.Frames) && c.Frames[c.Start].Func != want {
			t.Errorf("story starts at %q, want %q", c.Frames[c.Start].Func, want)
		}
	})
}

// TestThreadTable checks that every thread of the core is in the table,
// joined with an M when the runtime knows it, with a decided state.
func TestThreadTable(t *testing.T) {
	forEachCore(t, func(t *testing.T, l *loaded) {
		ths := l.rt.Threads()
		if len(ths) != len(l.proc.Threads) {
			t.Fatalf("%d threads in the table, %d in the core", len(ths), len(l.proc.Threads))
		}
		crashing := 0
		for i, th := range ths {
			if th.TID != l.proc.Threads[i].TID {
				t.Errorf("thread %d: tid %d, core says %d", i, th.TID, l.proc.Threads[i].TID)
			}
			if th.State == StateUnknown {
				t.Errorf("thread %d: state unknown (notes %v)", th.TID, th.Notes)
			}
			// A new M sets procid after its TLS: then the TLS g decides.
			if th.M != nil && th.M.ProcID != uint64(th.TID) && !(th.M.ProcID == 0 && th.G != nil && th.G.MAddr == th.M.Addr) {
				t.Errorf("thread %d joined with M%d whose procid is %d", th.TID, th.M.ID, th.M.ProcID)
			}
			if th.M == nil && th.State != StateNonGo {
				t.Errorf("thread %d has no M but state %s", th.TID, th.State)
			}
			if th.M != nil && th.G == nil {
				t.Errorf("thread %d (M%d): no g in the TLS slot %#x", th.TID, th.M.ID, th.TLSSlot)
			}
			if len(th.Notes) > 0 {
				t.Errorf("thread %d: unexpected disagreement: %v", th.TID, th.Notes)
			}
			if th.Crashing {
				crashing++
			}
		}
		if crashing != 1 {
			t.Errorf("%d crashing threads", crashing)
		}
		for _, m := range l.rt.Ms {
			if m.ProcID != 0 && l.proc.Thread(int(m.ProcID)) == nil && !m.IsExtra {
				t.Errorf("M%d (procid %d) has no thread in the core", m.ID, m.ProcID)
			}
		}
	})
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

// TestStrippedPclntab checks the pclntab reader on binaries built with
// -ldflags="-s -w" (no symbols, no DWARF) against the same program built
// with them: the same functions at the same addresses, inlined frames
// expanded, the same stacks.
func TestStrippedPclntab(t *testing.T) {
	for _, v := range requiredVariants {
		for _, name := range []string{"cgo-null-write", "go-panic-wrapped"} {
			t.Run(v.String()+"/"+name, func(t *testing.T) {
				full := loadFixture(t, name, v)
				sv := v
				sv.Strip = true
				f, err := fixtures.Load(name)
				if err != nil {
					t.Fatal(err)
				}
				c, err := f.Crash(sv)
				if err != nil {
					t.Fatal(err)
				}
				p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				ft, err := ReadFuncTable(p)
				if err != nil {
					t.Fatalf("stripped pclntab: %v", err)
				}
				want := map[string]bool{}
				full.rt.Funcs.Funcs(func(fn Func) bool { want[fmt.Sprintf("%s@%#x", fn.Name(), fn.Entry)] = true; return true })
				n := 0
				ft.Funcs(func(fn Func) bool {
					if key := fmt.Sprintf("%s@%#x", fn.Name(), fn.Entry); !want[key] {
						t.Errorf("%s in the stripped binary, not in the full one", key)
					}
					n++
					return true
				})
				if n != full.rt.Funcs.NumFuncs() {
					t.Errorf("%d functions stripped, %d in the full binary", n, full.rt.Funcs.NumFuncs())
				}
				// The special functions are recognised without DWARF.
				for _, fn := range []string{"runtime.goexit", "runtime.systemstack", "runtime.mcall", "runtime.sigpanic", "runtime.asmcgocall"} {
					a, _ := ft.FuncByName(fn)
					b, _ := full.rt.Funcs.FuncByName(fn)
					if a.Kind() != b.Kind() || a.TopFrame() != b.TopFrame() {
						t.Errorf("%s: kind %s top %v stripped, %s %v full", fn, a.Kind(), a.TopFrame(), b.Kind(), b.TopFrame())
					}
				}
				// The crashing thread unwinds to the same frames as far as
				// the runtime's layout is not needed (asmcgocall's switch).
				st := NativeStack(p, p.Threads[0], 0)
				ours := ourNames(st.Frames)
				fullNames := ourNames(full.rt.Threads()[0].Stack.Frames)
				if len(ours) < 6 || !containsRun(fullNames, ours[1:6]) {
					t.Errorf("stripped stack %q is not part of the full one %q", ours, fullNames)
				}
			})
		}
	}
}

// TestStackFromBucket checks that a goroutine's stack copied from its
// bucket (Stack's fast path) is the stack symbolised afresh, frame for
// frame, stack addresses included, on every core, and that FrameAt,
// which does not unwind, places stack words in the same frames.
func TestStackFromBucket(t *testing.T) {
	forEachCore(t, func(t *testing.T, l *loaded) {
		r := l.rt
		copied := 0
		for _, g := range r.Gs {
			got := r.Stack(g, 0)
			u := r.newUnwinder(false, nil, g, MaxGoroutineFrames)
			phys, err := r.goroutinePhys(g, MaxGoroutineFrames, u)
			want := Stack{Frames: r.expand(phys, nil), Err: err}
			if len(got.Frames) != len(want.Frames) || fmt.Sprint(got.Err) != fmt.Sprint(want.Err) {
				t.Fatalf("goroutine %d: %d frames (%v), want %d (%v)", g.ID, len(got.Frames), got.Err, len(want.Frames), want.Err)
			}
			for i := range got.Frames {
				if got.Frames[i] != want.Frames[i] {
					t.Fatalf("goroutine %d frame %d:\n got %+v\nwant %+v", g.ID, i, got.Frames[i], want.Frames[i])
				}
			}
			if b := r.BucketOf(g); b != nil && b.goOnly && b.Goroutines[0] != g {
				copied++
			}
			// FrameAt places every word of every frame as the frames do.
			for i, fr := range got.Frames {
				if fr.Inlined || fr.CFA <= fr.SP {
					continue
				}
				for _, a := range []uint64{fr.SP, fr.CFA - 8} {
					if j, ok := r.FrameAt(g, a); !ok || j != i {
						t.Fatalf("goroutine %d: FrameAt(%#x) = %d, %v; want frame %d (%s [%#x, %#x))", g.ID, a, j, ok, i, fr.Func, fr.SP, fr.CFA)
					}
				}
			}
		}
		if len(r.Gs) > 20 && copied == 0 {
			t.Errorf("no stack of %d goroutines came from a bucket", len(r.Gs))
		}
	})
}
