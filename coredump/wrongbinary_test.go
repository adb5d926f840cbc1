package coredump_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

func crashVariant(t *testing.T, name string, v fixtures.Variant) *fixtures.Crash {
	t.Helper()
	return fixturetest.MustCrash(t, name, v)
}

// wantMismatch opens core with the wrong exe and checks the refusal names
// both build IDs, then that Force opens it with a warning and reads nothing
// from it.
func wantMismatch(t *testing.T, core, exe string, kind string) {
	t.Helper()
	wantRefused(t, core, exe, kind)
	wantForcedOther(t, core, exe)
}

// wantRefused checks that opening core with exe is refused, naming both
// build IDs on one line.
func wantRefused(t *testing.T, core, exe string, kind string) {
	t.Helper()
	_, err := coredump.Open(core, exe, coredump.Options{})
	var mis *coredump.BuildIDMismatchError
	if !errors.As(err, &mis) {
		t.Fatalf("%s: open with the wrong binary: %v", kind, err)
	}
	var exeID, coreID string
	switch kind {
	case "go":
		exeID, coreID = mis.ExeIDs.Go, mis.CoreIDs.Go
	case "gnu":
		exeID, coreID = mis.ExeIDs.GNU, mis.CoreIDs.GNU
	}
	if exeID == "" || coreID == "" || exeID == coreID {
		t.Fatalf("%s build IDs: binary %q, core %q", kind, exeID, coreID)
	}
	if msg := err.Error(); !strings.Contains(msg, exeID) || !strings.Contains(msg, coreID) || strings.Contains(msg, "\n") {
		t.Errorf("message does not name both build IDs on one line: %s", msg)
	}
}

// wantForcedOther opens core with another program's exe under --force.
func wantForcedOther(t *testing.T, core, exe string) {
	t.Helper()
	p, err := coredump.Open(core, exe, coredump.Options{Force: true})
	if err != nil {
		t.Fatalf("--force: %v", err)
	}
	defer p.Close()
	// A binary whose segments do not lie where the core maps the
	// executable is not the program: nothing is read from it.
	if p.Exe.Status != coredump.ImageMismatch || !p.ForcedMismatch ||
		!containsWith(p.Warnings, "analysed anyway because of --force, but nothing is read from it") || !containsWith(p.Warnings, "this binary's segment") {
		t.Errorf("--force: status %s, warnings %q", p.Exe.Status, p.Warnings)
	}
}

// wantForcedRebuild opens core with a rebuild of its program (same code,
// another build ID) under --force: it stands in, with a warning.
func wantForcedRebuild(t *testing.T, core, exe string) {
	t.Helper()
	p, err := coredump.Open(core, exe, coredump.Options{Force: true})
	if err != nil {
		t.Fatalf("--force: %v", err)
	}
	defer p.Close()
	if p.Exe.Status != coredump.ImageUnverified || !p.ForcedMismatch ||
		!containsWith(p.Warnings, "its segments lie where the core maps the executable and the return addresses on the stacks follow calls in its code") {
		t.Errorf("--force: status %s, warnings %q", p.Exe.Status, p.Warnings)
	}
}

// Two pure Go programs carry only Go build IDs; the refusal names both.
func TestWrongBinaryGoBuildID(t *testing.T) {
	a, b := crash(t, "go-nil-map"), crash(t, "go-nil-field")
	wantMismatch(t, a.Core, b.Binary, "go")
	// The same program rebuilt differently (here: stripped) is another
	// build; its code is the same, so --force lets it stand in.
	s := crashVariant(t, "go-nil-map", fixtures.Variant{Strip: true})
	wantRefused(t, a.Core, s.Binary, "go")
	wantForcedRebuild(t, a.Core, s.Binary)
	wantRefused(t, s.Core, a.Binary, "go")
	wantForcedRebuild(t, s.Core, a.Binary)
}

// A Go PIE is loaded at a random base: its own binary matches with the
// load bias applied; another build is refused.
func TestWrongBinaryGoPIE(t *testing.T) {
	pie := crashVariant(t, "go-nil-map", fixtures.Variant{PIE: true})
	p := open(t, pie.Core, pie.Binary)
	if p.Exe.Status != coredump.ImageVerified || p.Exe.Bias == 0 {
		t.Fatalf("PIE executable: status %s, bias %#x", p.Exe.Status, p.Exe.Bias)
	}
	fn, ok := p.Exe.LookupSymbol("main.record")
	if !ok || fn.Addr < p.Exe.Base || !p.Exe.Contains(fn.Addr) {
		t.Errorf("main.record at %#x, outside the PIE's mappings from %#x", fn.Addr, p.Exe.Base)
	}
	wantMismatch(t, pie.Core, crash(t, "go-nil-map").Binary, "go")
}

// C programs are PIE by default with Debian's gcc and carry GNU build IDs:
// a rebuild with other flags is refused.
func TestWrongBinaryCPIE(t *testing.T) {
	c := crash(t, "c-segv")
	p := open(t, c.Core, c.Binary)
	if p.Exe.Bias == 0 || p.Exe.Status != coredump.ImageVerified || p.Exe.CoreIDs.GNU == "" {
		t.Fatalf("C PIE: bias %#x status %s ids %v", p.Exe.Bias, p.Exe.Status, p.Exe.CoreIDs)
	}
	rebuilt := filepath.Join(t.TempDir(), "c-segv")
	src := filepath.Join(c.Fixture.Dir, "main.c")
	if out, err := exec.Command("gcc", "-O2", "-pthread", "-o", rebuilt, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	wantMismatch(t, c.Core, rebuilt, "gnu")
}

// A stripped Go executable (-s -w) still names its functions, from
// .gopclntab, at the addresses the unstripped build has them: pure Go
// (internally linked) and cgo (externally linked, where the Go text does not
// start at .text).
func TestStrippedGoSymbols(t *testing.T) {
	for _, x := range []struct {
		name string
		v    fixtures.Variant
	}{
		{"go-nil-field", fixtures.Variant{}},
		{"cgo-null-write", fixtures.Variant{}},
		{"cgo-null-write", fixtures.Variant{CC: "musl-gcc"}},
		{"go-nil-field", fixtures.Variant{PIE: true}},
	} {
		fx := x.name + " " + x.v.String()
		fc := crashVariant(t, x.name, x.v)
		full := open(t, fc.Core, fc.Binary)
		sv := x.v
		sv.Strip = true
		sc := crashVariant(t, x.name, sv)
		p := open(t, sc.Core, sc.Binary)
		for _, name := range []string{"main.main", "runtime.sigpanic", "runtime.gopanic", "runtime.schedule"} {
			want, ok1 := full.Exe.LookupSymbol(name)
			got, ok2 := p.Exe.LookupSymbol(name)
			if !ok1 || !ok2 || got.Addr-p.Exe.Bias != want.Addr-full.Exe.Bias || got.Size < want.Size || got.Size > want.Size+64 { // pclntab sizes include alignment padding
				t.Errorf("%s: %s stripped %#x+%d (%v), unstripped %#x+%d (%v)", fx, name, got.Addr, got.Size, ok2, want.Addr, want.Size, ok1)
			}
		}
		im, sym, ok := p.Symbolize(p.Threads[0].Regs.PC())
		if !ok || !im.IsExe || !strings.HasPrefix(sym.Name, "runtime.") {
			t.Errorf("%s: first thread's pc %#x in %v %q", fx, p.Threads[0].Regs.PC(), im, sym.Name)
		}
	}
}
