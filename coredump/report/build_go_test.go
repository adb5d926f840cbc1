package report

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
)

func buildFixture(t *testing.T, name string, opts Options) (*Report, *fixtures.Crash, *coredump.Process) {
	t.Helper()
	fx, err := fixtures.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fx.Crash(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return Build(p, opts), c, p
}

// crashedFixtures are the names of the fixtures that crash into a core
// (all but the live ones).
func crashedFixtures(t *testing.T) []string {
	t.Helper()
	names, err := fixtures.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range names {
		fx, err := fixtures.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if !fx.Spec.Live {
			out = append(out, name)
		}
	}
	return out
}

// TestGoSections checks the sections the Go runtime's view fills on every
// Go fixture against what the runtime printed.
func TestGoSections(t *testing.T) {
	names, err := fixtures.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		fx, _ := fixtures.Load(name)
		if fx.Spec.Lang == fixtures.LangC || fx.Spec.Live {
			continue
		}
		t.Run(name, func(t *testing.T) {
			r, c, p := buildFixture(t, name, Options{})
			o := c.Oracle
			if !strings.HasPrefix(r.Process.GoVersion, "go1.") {
				t.Errorf("go_version %q", r.Process.GoVersion)
			}
			if len(r.Process.Args) == 0 || !strings.HasSuffix(r.Process.Args[0], name) {
				t.Errorf("args %q", r.Process.Args)
			}
			if r.Signal == nil || r.Crash == nil || r.Goroutines == nil {
				t.Fatalf("signal %v, crash %v, goroutines %v", r.Signal, r.Crash, r.Goroutines)
			}
			if o.Signal != "" {
				if r.Signal.Name != o.Signal || r.Signal.PC == nil || uint64(*r.Signal.PC) != o.PC {
					t.Errorf("signal %+v, runtime printed %s pc=%#x", r.Signal, o.Signal, o.PC)
				}
				if o.HasAddr && (r.Signal.Addr == nil || uint64(*r.Signal.Addr) != o.Addr) {
					t.Errorf("signal address %v, runtime printed %#x", r.Signal.Addr, o.Addr)
				}
				if r.Signal.Reraised == nil || r.Signal.Source == "NT_SIGINFO" {
					t.Errorf("the runtime re-raised, but signal says source %s, reraised %v", r.Signal.Source, r.Signal.Reraised)
				}
			}
			if len(r.Crash.Frames) == 0 {
				t.Fatal("no crash frames")
			}
			for _, f := range r.Crash.Frames {
				if f.Plumbing {
					t.Errorf("plumbing frame %s shown without --all", f.Function)
				}
			}
			if want, ok := fx.Spec.Expect["frames"].([]any); ok {
				var have []string
				for _, f := range r.Crash.Frames {
					have = append(have, f.Function)
				}
				i := 0
				for _, h := range have {
					if i < len(want) && h == want[i] {
						i++
					}
				}
				if i != len(want) {
					t.Errorf("crash frames %q do not contain %q in order", have, want)
				}
			}
			if len(r.Threads) != len(p.Threads) {
				t.Errorf("%d threads, core has %d", len(r.Threads), len(p.Threads))
			}
			crashing := 0
			for _, th := range r.Threads {
				if th.State == "unknown" || th.State == "" {
					t.Errorf("thread %d: state %q", th.TID, th.State)
				}
				if th.Crashing {
					crashing++
					if th.TID != r.Crash.TID {
						t.Errorf("crashing thread %d, crash says %d", th.TID, r.Crash.TID)
					}
				}
			}
			if crashing != 1 {
				t.Errorf("%d crashing threads", crashing)
			}
			total := 0
			for _, b := range r.Goroutines.Buckets {
				total += b.Count
				if len(b.IDs) != min(b.Count, defaultBucketIDs) {
					t.Errorf("bucket of %d lists %d ids", b.Count, len(b.IDs))
				}
			}
			if total != r.Goroutines.Total {
				t.Errorf("buckets hold %d goroutines, total %d", total, r.Goroutines.Total)
			}
			byState := 0
			for _, n := range r.Goroutines.ByState {
				byState += n
			}
			if byState != r.Goroutines.Total {
				t.Errorf("by_state sums to %d, total %d", byState, r.Goroutines.Total)
			}
			if r.Crash.Goroutine != 0 && !r.Goroutines.Buckets[0].Crashing {
				t.Errorf("the crashing goroutine's bucket is not first")
			}
			if _, err := json.Marshal(r); err != nil {
				t.Errorf("JSON: %v", err)
			}
		})
	}
}

// TestAllKeepsEverything checks --all: crash machinery kept and marked,
// every thread's frames present.
func TestAllKeepsEverything(t *testing.T) {
	r, _, _ := buildFixture(t, "cgo-null-write", Options{All: true})
	plumbing := 0
	for _, f := range r.Crash.Frames {
		if f.Plumbing {
			plumbing++
		}
	}
	if plumbing == 0 {
		t.Error("--all shows no crash-handling frames")
	}
	for _, th := range r.Threads {
		if len(th.Frames) == 0 {
			t.Errorf("thread %d: no frames under --all", th.TID)
		}
	}
	var names []string
	for _, f := range r.Crash.Frames {
		names = append(names, f.Function)
	}
	s := strings.Join(names, " ")
	for _, want := range []string{"runtime.sigtramp", "[signal SIGSEGV SEGV_MAPERR]", "write_result", "run_job", "main._Cfunc_run_job", "main.main"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q missing from the --all crash stack %q", want, s)
		}
	}
}

// TestNativeProcess checks the sections of a process without a Go
// runtime: the signal from NT_SIGINFO, the native stack, the threads.
func TestNativeProcess(t *testing.T) {
	r, c, p := buildFixture(t, "c-segv", Options{})
	exp := c.Fixture.Spec.Expect
	if r.Signal == nil || r.Signal.Name != exp["signal"] || r.Signal.Code != exp["code"] || r.Signal.Source != "NT_SIGINFO" {
		t.Fatalf("signal %+v", r.Signal)
	}
	if r.Signal.Addr == nil || r.Signal.Addr.String() != exp["addr"] {
		t.Errorf("address %v, want %v", r.Signal.Addr, exp["addr"])
	}
	if r.Crash == nil || len(r.Crash.Frames) < 2 || r.Crash.Frames[0].Function != exp["fault_function"] {
		t.Fatalf("crash %+v", r.Crash)
	}
	if r.Crash.Frames[1].Function != "worker" {
		t.Errorf("the faulting function's caller is %q, want worker", r.Crash.Frames[1].Function)
	}
	if r.Goroutines != nil || r.Process.GoVersion != "" {
		t.Errorf("a C program reported with goroutines %v, Go %q", r.Goroutines, r.Process.GoVersion)
	}
	if len(r.Threads) != len(p.Threads) {
		t.Fatalf("%d threads, core has %d", len(r.Threads), len(p.Threads))
	}
	for _, th := range r.Threads {
		if th.State != "non-go" || th.Function == "" {
			t.Errorf("thread %d: state %q function %q", th.TID, th.State, th.Function)
		}
	}
	main := r.Threads[1]
	if !strings.Contains(fmt.Sprint(frameNames(main.Frames)), "main") {
		t.Errorf("the main thread's stack %v does not reach main", frameNames(main.Frames))
	}
}

func frameNames(fs []Frame) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Function)
	}
	return out
}
