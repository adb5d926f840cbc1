package coredump_test

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
)

func crash(t *testing.T, name string) *fixtures.Crash {
	t.Helper()
	f, err := fixtures.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func open(t *testing.T, core, exe string) *coredump.Process {
	t.Helper()
	p, err := coredump.Open(core, exe, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// The notes of a Go re-raise core: NT_SIGINFO says SIGABRT sent by the
// process to itself with tgkill, and the first thread is the one that died.
func TestGoReraiseNotes(t *testing.T) {
	c := crash(t, "go-nil-field")
	p := open(t, c.Core, c.Binary)
	if p.Arch != coredump.ArchAMD64 {
		t.Fatalf("arch %s", p.Arch)
	}
	si := p.Signal
	if si == nil || si.Signo != coredump.SIGABRT || si.CodeName() != "SI_TKILL" || int(si.PID) != p.PID {
		t.Fatalf("NT_SIGINFO = %+v, want SIGABRT SI_TKILL from pid %d", si, p.PID)
	}
	if p.Command != "go-nil-field" {
		t.Errorf("command %q", p.Command)
	}
	if got := p.Threads[0].CurSig; got != coredump.SIGABRT {
		t.Errorf("first thread's pr_cursig = %v", got)
	}
	entry, ok := p.Auxv.Lookup(coredump.AT_ENTRY)
	ef, err := elf.Open(c.Binary)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	if !ok || entry != ef.Entry {
		t.Errorf("AT_ENTRY %#x, ELF entry %#x", entry, ef.Entry)
	}
	if p.Exe == nil || !p.Exe.IsExe || p.Exe.Status != coredump.ImageVerified || p.Exe.CoreIDs.Go == "" {
		t.Fatalf("executable image: %+v", p.Exe)
	}
	for _, th := range p.Threads {
		if th.TP() == 0 || th.Regs.SP() == 0 || !th.HasFP {
			t.Errorf("thread %d: tp %#x sp %#x fp %v", th.TID, th.TP(), th.Regs.SP(), th.HasFP)
		}
	}
}

// Every thread Delve sees is in the core's thread list, with the same
// registers.
func TestThreadsMatchDelve(t *testing.T) {
	for _, name := range []string{"cgo-null-write", "go-concurrent-map"} {
		c := crash(t, name)
		p := open(t, c.Core, c.Binary)
		tgt, err := p.Delve()
		if err != nil {
			t.Fatal(err)
		}
		var ours, theirs []int
		for _, th := range p.Threads {
			ours = append(ours, th.TID)
		}
		for _, th := range tgt.ThreadList() {
			theirs = append(theirs, th.ThreadID())
			regs, err := th.Registers()
			if err != nil {
				t.Fatal(err)
			}
			if our := p.Thread(th.ThreadID()); our == nil || our.Regs.PC() != regs.PC() || our.TP() != regs.TLS() {
				t.Errorf("%s: thread %d registers differ from Delve's", name, th.ThreadID())
			}
		}
		sort.Ints(ours)
		sort.Ints(theirs)
		if len(ours) < 2 || !equalInts(ours, theirs) {
			t.Errorf("%s: threads %v, Delve %v", name, ours, theirs)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A C program's core records the real fault in NT_SIGINFO.
func TestCFaultSigInfo(t *testing.T) {
	c := crash(t, "c-segv")
	p := open(t, c.Core, c.Binary)
	si := p.Signal
	if si.Signo != coredump.SIGSEGV || si.CodeName() != "SEGV_MAPERR" || si.Addr != 0xdeadbeef00 {
		t.Fatalf("NT_SIGINFO = %+v", si)
	}
	if len(p.Threads) != 2 {
		t.Errorf("%d threads, want 2 (main and worker)", len(p.Threads))
	}
	// The fault happened in store(), reached through the worker thread.
	im, sym, ok := p.Symbolize(p.Threads[0].Regs.PC())
	if !ok || !im.IsExe || sym.Name != "store" {
		t.Errorf("faulting pc in %v %q", im, sym.Name)
	}
}

// Pages the kernel did not dump (libc's code) come from the file on disk,
// and only from a verified one.
func TestFileBackedPages(t *testing.T) {
	c := crash(t, "cgo-null-write")
	p := open(t, c.Core, c.Binary)
	libc := p.ImageByName("libc.so")
	if libc == nil || libc.Status != coredump.ImageVerified {
		t.Fatalf("libc image: %+v", libc)
	}
	sym, ok := libc.LookupSymbol("__errno_location")
	if !ok {
		t.Fatal("no __errno_location in libc")
	}
	m := p.FindMapping(sym.Addr)
	if m == nil || m.Perm&coredump.PermExec == 0 || m.Dumped >= m.Size() {
		t.Fatalf("__errno_location's mapping %v should be executable and not fully dumped", m)
	}
	got := make([]byte, 16)
	if _, err := p.ReadMemory(got, sym.Addr); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 16)
	f, err := os.Open(libc.HostPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(want, int64(m.Offset+(sym.Addr-m.Start))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("code of __errno_location: % x, file has % x", got, want)
	}
}

func TestMemoryErrors(t *testing.T) {
	c := crash(t, "cgo-null-write")
	p := open(t, c.Core, c.Binary)
	_, err := p.ReadMemory(make([]byte, 8), 0x10)
	me, ok := coredump.AsMemoryError(err)
	if !ok || me.Reason != coredump.NotMapped || me.Addr != 0x10 {
		t.Errorf("read at 0x10: %v", err)
	}
	// A PROT_NONE reservation is mapped but has no bytes.
	for _, m := range p.Mappings {
		if m.Perm == 0 && m.Dumped == 0 && !m.FileBacked() {
			_, err := p.ReadMemory(make([]byte, 8), m.Start)
			if me, ok := coredump.AsMemoryError(err); !ok || me.Reason != coredump.NotDumped || me.Mapping != m {
				t.Errorf("read in %v: %v", m, err)
			}
			break
		}
	}
	// A read that runs off the end of a mapping into a gap stops there.
	last := p.Mappings[0]
	b := make([]byte, 64)
	n, err := p.ReadMemory(b, last.End-8)
	if next := p.FindMapping(last.End); next == nil {
		if me, ok := coredump.AsMemoryError(err); !ok || n != 8 || me.Addr != last.End {
			t.Errorf("read across the end of %v: n=%d err=%v", last, n, err)
		}
	}
	s, ok, err := p.ReadCString(p.Exe.Base+1, 3)
	if err != nil || ok || s != "ELF" {
		t.Errorf("ReadCString at exe base+1 = %q %v %v", s, ok, err)
	}
}

func TestBinaryFromCore(t *testing.T) {
	c := crash(t, "go-nil-map")
	p := open(t, c.Core, "")
	if p.Exe == nil || p.Exe.HostPath != c.Binary || p.Exe.Status != coredump.ImageVerified {
		t.Fatalf("executable found from the core: %+v", p.Exe)
	}
}

func TestWrongBinary(t *testing.T) {
	a, b := crash(t, "go-nil-map"), crash(t, "cgo-null-write")
	_, err := coredump.Open(a.Core, b.Binary, coredump.Options{})
	var mis *coredump.BuildIDMismatchError
	if !errors.As(err, &mis) || mis.ExeIDs.GNU == "" || mis.CoreIDs.Go == "" {
		t.Fatalf("open with the wrong binary: %v", err)
	}
	p, err := coredump.Open(a.Core, b.Binary, coredump.Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if len(p.Warnings) == 0 {
		t.Error("--force without a warning")
	}
	// The binary given where the core belongs.
	_, err = coredump.Open(a.Binary, a.Binary, coredump.Options{})
	var in *coredump.InputError
	if !errors.As(err, &in) {
		t.Errorf("executable as core: %v", err)
	}
}

// A core cut short keeps its notes and low mappings; reads past the cut say
// so, and the truncation names how much is missing.
func TestTruncatedCore(t *testing.T) {
	c := crash(t, "cgo-null-write")
	data, err := os.ReadFile(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "core")
	keep := len(data) / 2
	if err := os.WriteFile(cut, data[:keep], 0o644); err != nil {
		t.Fatal(err)
	}
	p := open(t, cut, c.Binary)
	tr := p.Truncation
	if tr == nil || tr.FileSize != int64(keep) || tr.ExpectedSize != int64(len(data)) || tr.NotesMissing || len(tr.Segments) == 0 {
		t.Fatalf("truncation: %+v", tr)
	}
	m := tr.Segments[len(tr.Segments)-1]
	_, err = p.ReadMemory(make([]byte, 8), m.Start+m.Dumped-8)
	if me, ok := coredump.AsMemoryError(err); !ok || me.Reason != coredump.Truncated {
		t.Errorf("read in a lost segment: %v", err)
	}
	if len(p.Threads) == 0 {
		t.Error("threads lost with a complete note segment")
	}
}
