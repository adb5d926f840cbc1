//go:build linux

package coredump_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
)

// runFixture runs a crash fixture under coredump.Run and returns the
// result and what the program printed on stderr.
func runFixture(t *testing.T, name string) (*coredump.RunResult, string, string) {
	t.Helper()
	f, err := fixtures.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := f.Build(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	env := append(os.Environ(), "GOTRACEBACK=crash")
	for k, v := range f.Spec.Env {
		env = append(env, k+"="+v)
	}
	res, err := coredump.Run(bin, f.Spec.Args, coredump.RunOptions{Env: env, Dir: dir, Stderr: errf, CoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(errf.Name())
	return res, string(b), bin
}

func TestRunCapturesGoCrash(t *testing.T) {
	res, stderr, bin := runFixture(t, "go-nil-field")
	o := fixtures.ParseOracle(stderr)
	if res.Signal != coredump.SIGABRT || res.Status() != 128+6 || res.Core == "" || res.CoreErr != nil {
		t.Fatalf("result %+v\n%s", res, stderr)
	}
	if si := res.SigInfo; si == nil || si.Signo != coredump.SIGABRT || si.CodeName() != "SI_TKILL" || int(si.PID) != res.PID {
		t.Errorf("caught signal %+v", res.SigInfo)
	}
	if filepath.Base(res.Core) != "core.go-nil-field."+strconv.Itoa(res.PID) {
		t.Errorf("core written to %s", res.Core)
	}
	t.Logf("core %s: %+v, held for %v", res.Core, res.Stats, res.Frozen)
	p, err := coredump.Open(res.Core, bin, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.PID != res.PID || p.Exe.Status != coredump.ImageVerified {
		t.Errorf("core pid %d, exe %+v", p.PID, p.Exe)
	}
	if si := p.Signal; si == nil || si.Signo != coredump.SIGABRT || si.CodeName() != "SI_TKILL" || int(si.PID) != res.PID {
		t.Errorf("NT_SIGINFO %+v", p.Signal)
	}
	// The runtime printed the crashing goroutine; it ran on the thread
	// that raised SIGABRT, which the core lists first with the signal.
	if o.Signal != "SIGSEGV" || !o.HasAddr || len(p.Threads) < 2 {
		t.Fatalf("oracle %+v, %d threads", o, len(p.Threads))
	}
	for _, th := range p.Threads {
		if th.CurSig != coredump.SIGABRT {
			t.Errorf("thread %d: pr_cursig %v", th.TID, th.CurSig)
		}
	}
	if _, sym, ok := p.Symbolize(p.Threads[0].Regs.PC()); !ok || !strings.HasPrefix(sym.Name, "runtime.") {
		t.Errorf("first thread's pc %#x in %q, want the runtime's raise", p.Threads[0].Regs.PC(), sym.Name)
	}
}

func TestRunCapturesCCrash(t *testing.T) {
	res, _, bin := runFixture(t, "c-segv")
	if res.Signal != coredump.SIGSEGV || res.Core == "" {
		t.Fatalf("result %+v", res)
	}
	p, err := coredump.Open(res.Core, bin, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	si := p.Signal
	if si.Signo != coredump.SIGSEGV || si.CodeName() != "SEGV_MAPERR" || si.Addr != 0xdeadbeef00 {
		t.Errorf("NT_SIGINFO %+v", si)
	}
	if _, sym, ok := p.Symbolize(p.Threads[0].Regs.PC()); !ok || sym.Name != "store" || len(p.Threads) != 2 {
		t.Errorf("first thread in %q; %d threads", sym.Name, len(p.Threads))
	}
}

func TestRunPassesExitStatus(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		script string
		status int
		sig    coredump.Signal
	}{
		{"exit 0", 0, 0},
		{"exit 3", 3, 0},
		{"kill -TERM $$", 128 + 15, coredump.SIGTERM},
		{"trap 'exit 7' USR1; kill -USR1 $$; sleep 1", 7, 0},
	} {
		res, err := coredump.Run("sh", []string{"-c", tc.script}, coredump.RunOptions{CoreDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status() != tc.status || res.Signal != tc.sig || res.Core != "" {
			t.Errorf("sh -c %q: %+v, want status %d", tc.script, res, tc.status)
		}
	}
	// With AllSignals a SIGTERM death is captured too.
	res, err := coredump.Run("sh", []string{"-c", "kill -TERM $$"}, coredump.RunOptions{CoreDir: dir, AllSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Signal != coredump.SIGTERM || res.Core == "" {
		t.Errorf("AllSignals: %+v", res)
	}
	if _, err := coredump.Run(filepath.Join(dir, "nope"), nil, coredump.RunOptions{}); err == nil {
		t.Error("running a missing program succeeded")
	}
}
