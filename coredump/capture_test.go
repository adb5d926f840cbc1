//go:build linux

package coredump_test

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
)

// A core captured with ptrace (what the fixture generator does when
// core_pattern pipes cores away) says what the kernel's core of the very
// same crash says: the fixture runs under coredump.Run with RLIMIT_CORE
// lifted, so after the capture the kernel dumps the same process.
func TestPtraceCaptureMatchesKernel(t *testing.T) {
	t.Setenv(fixtures.CaptureEnv, "ptrace")
	for _, name := range []string{"go-nil-field", "cgo-null-write", "go-concurrent-map", "c-segv"} {
		t.Run(name, func(t *testing.T) {
			f, err := fixtures.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.Crash(fixtures.Default)
			if err != nil {
				t.Fatal(err)
			}
			if c.Capture != "ptrace" {
				t.Fatalf("captured by %q", c.Capture)
			}
			ours := open(t, c.Core, c.Binary)
			checkOracle(t, f, c, ours)
			if c.KernelCore == "" {
				t.Skip("core_pattern pipes cores away: no kernel core of the same crash to compare with")
			}
			kernel := open(t, c.KernelCore, c.Binary)
			compareCores(t, ours, kernel)
			compareReports(t, ours, kernel)
			if f.Spec.Lang != fixtures.LangC {
				compareCrash(t, c.Oracle, ours, kernel)
			}
		})
	}
}

// checkOracle checks the captured core against what the program printed.
func checkOracle(t *testing.T, f *fixtures.Fixture, c *fixtures.Crash, p *coredump.Process) {
	t.Helper()
	si := p.Signal
	if f.Spec.Lang == fixtures.LangC {
		if want, _ := f.Spec.Expect["signal"].(string); si == nil || si.Signo.String() != want {
			t.Errorf("NT_SIGINFO %+v, fixture expects %s", si, want)
		}
		return
	}
	// Go re-raises SIGABRT at the thread that crashed.
	if si == nil || si.Signo != coredump.SIGABRT || si.CodeName() != "SI_TKILL" || int(si.PID) != p.PID {
		t.Errorf("NT_SIGINFO %+v", si)
	}
	if want, _ := f.Spec.Expect["signal"].(string); want != "" && c.Oracle.Signal != want {
		t.Errorf("the runtime printed %q, fixture expects %q", c.Oracle.Signal, want)
	}
}

func compareCores(t *testing.T, ours, kernel *coredump.Process) {
	t.Helper()
	if *ours.Signal != *kernel.Signal {
		t.Errorf("NT_SIGINFO: ours %+v, kernel %+v", ours.Signal, kernel.Signal)
	}
	if ours.PID != kernel.PID || ours.Command != kernel.Command {
		t.Errorf("process: ours %d %q, kernel %d %q", ours.PID, ours.Command, kernel.PID, kernel.Command)
	}
	if len(ours.Threads) != len(kernel.Threads) || ours.Threads[0].TID != kernel.Threads[0].TID {
		t.Fatalf("threads: ours %v, kernel %v", tids(ours), tids(kernel))
	}
	for _, kt := range kernel.Threads {
		ot := ours.Thread(kt.TID)
		if ot == nil || !equalU64(ot.Regs.Values, kt.Regs.Values) || ot.CurSig != kt.CurSig || ot.SigHold != kt.SigHold {
			t.Errorf("thread %d: ours %+v, kernel %+v", kt.TID, ot, kt)
		}
	}
	if len(ours.Auxv) != len(kernel.Auxv) {
		t.Errorf("auxv: %d entries, kernel %d", len(ours.Auxv), len(kernel.Auxv))
	}
	if len(ours.Mappings) != len(kernel.Mappings) {
		t.Fatalf("%d mappings, kernel %d", len(ours.Mappings), len(kernel.Mappings))
	}
	// Every byte the kernel stored, we stored alike, but for what only
	// the kernel can read: [vvar] (just below the vDSO) and [vsyscall].
	vdso, _ := kernel.Auxv.Lookup(coredump.AT_SYSINFO_EHDR)
	kernelOnly := func(m *coredump.Mapping) bool {
		return m.Start >= 1<<63 || (m.End <= vdso && m.Start >= vdso-0x10000)
	}
	compared := 0
	for i, km := range kernel.Mappings {
		om := ours.Mappings[i]
		if om.Start != km.Start || om.End != km.End || om.Perm != km.Perm || om.Path != km.Path {
			t.Fatalf("mapping %d: ours %v, kernel %v", i, om, km)
		}
		if km.Dumped == 0 || (om.Dumped == 0 && kernelOnly(km)) {
			continue
		}
		a, b := make([]byte, km.Dumped), make([]byte, km.Dumped)
		_, err1 := ours.ReadMemory(a, km.Start)
		_, err2 := kernel.ReadMemory(b, km.Start)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			first := -1
			n := 0
			for i := range a {
				if a[i] != b[i] {
					if first < 0 {
						first = i
					}
					n++
				}
			}
			t.Errorf("%v: memory differs (%v, %v): %d bytes from offset %#x", km, err1, err2, n, first)
		}
		compared += len(a)
	}
	t.Logf("%d threads, %d mappings, %d bytes compared", len(kernel.Threads), len(kernel.Mappings), compared)
}

// compareReports checks that the whole report — signal, fault address,
// crashing thread and goroutine, threads, findings — is the same but for
// where the core came from.
// vsyscallStart is where x86-64 Linux maps [vsyscall].
const vsyscallStart = 0xffffffffff600000

func compareReports(t *testing.T, ours, kernel *coredump.Process) {
	t.Helper()
	a, b := report.Build(ours, report.Options{All: true}), report.Build(kernel, report.Options{All: true})
	a.Input, b.Input = report.Input{}, report.Input{}
	// The one designed difference: our cores hold every readable mapping
	// (WriteCore stores file-backed code too, so a core is complete without
	// its files), the kernel's default coredump_filter only anonymous and
	// written memory and ELF headers. Ours must hold at least what the
	// kernel's holds; the rest of the reports must be equal.
	// Only the kernel can read its own pages: [vvar] and [vvar_vclock]
	// just below the vDSO, and [vsyscall].
	kernelOnly := func(m report.Mapping) bool {
		vdso, _ := ours.Auxv.Lookup(coredump.AT_SYSINFO_EHDR)
		return uint64(m.Start) == vsyscallStart || vdso != 0 && uint64(m.End) <= vdso && vdso-uint64(m.End) < 1<<20 && m.File == "" && m.Perm == "r--"
	}
	if len(a.Process.Mappings) == len(b.Process.Mappings) {
		for i := range a.Process.Mappings {
			ma, mb := &a.Process.Mappings[i], &b.Process.Mappings[i]
			if ma.Dumped < mb.Dumped && !kernelOnly(*ma) {
				t.Errorf("mapping %s-%s %s %q: ptrace core holds %d bytes, kernel core %d", ma.Start, ma.End, ma.Perm, ma.File, ma.Dumped, mb.Dumped)
			}
			ma.Dumped, mb.Dumped = 0, 0
		}
	}
	// The kernel lists the threads after the first in the order they
	// reached the dump, which varies.
	for _, r := range []*report.Report{a, b} {
		rest := r.Threads[1:]
		sort.Slice(rest, func(i, j int) bool { return rest[i].TID < rest[j].TID })
	}
	ja, _ := json.MarshalIndent(a, "", " ")
	jb, _ := json.MarshalIndent(b, "", " ")
	if !bytes.Equal(ja, jb) {
		la, lb := strings.Split(string(ja), "\n"), strings.Split(string(jb), "\n")
		for i := 0; i < min(len(la), len(lb)); i++ {
			if la[i] != lb[i] {
				t.Errorf("reports differ at line %d:\nptrace: %s\nkernel: %s", i, strings.Join(la[max(0, i-5):min(len(la), i+5)], "\n"), strings.Join(lb[max(0, i-5):min(len(lb), i+5)], "\n"))
				break
			}
		}
	}
	if len(a.Threads) != len(kernel.Threads) || !a.Threads[0].Crashing || a.Threads[0].TID != kernel.Threads[0].TID {
		t.Errorf("report threads: %d, first %+v", len(a.Threads), a.Threads[0])
	}
}

// compareCrash checks the crash story the Go runtime view tells of both
// cores — the signal, fault address and pc, the crashing thread and
// goroutine — against each other and against what the runtime printed.
func compareCrash(t *testing.T, o *fixtures.Oracle, cores ...*coredump.Process) {
	t.Helper()
	var faults []goruntime.Fault
	for i, p := range cores {
		rt, err := goruntime.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		c, err := rt.Crash()
		if err != nil {
			t.Fatal(err)
		}
		which := []string{"ptrace", "kernel"}[i]
		ft := c.Fault
		faults = append(faults, ft)
		if o.Signal != "" && (ft.Signo.String() != o.Signal || int64(ft.Code) != o.SigCode || (o.HasAddr && ft.Addr != o.Addr) || (o.PC != 0 && ft.PC != o.PC)) {
			t.Errorf("%s core: fault %s code %d addr %#x pc %#x; the runtime printed %s code %d addr %#x pc %#x",
				which, ft.Signo, ft.Code, ft.Addr, ft.PC, o.Signal, o.SigCode, o.Addr, o.PC)
		}
		if o.GoroutineState == "running" && (c.G == nil || c.G.ID != o.Goroutine) {
			t.Errorf("%s core: crashing goroutine %v, the runtime printed %d", which, c.G, o.Goroutine)
		}
		if c.Thread == nil || c.Thread.TID != p.Threads[0].TID {
			t.Errorf("%s core: crashing thread %+v, first thread %d", which, c.Thread, p.Threads[0].TID)
		}
	}
	if a, b := faults[0], faults[1]; a.Signo != b.Signo || a.Code != b.Code || a.Addr != b.Addr || a.PC != b.PC || a.Source != b.Source {
		t.Errorf("fault: ptrace core %+v, kernel core %+v", a, b)
	}
}

func tids(p *coredump.Process) []int {
	var out []int
	for _, th := range p.Threads {
		out = append(out, th.TID)
	}
	sort.Ints(out)
	return out
}
