package libc_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/libc"
	"github.com/coreexplain/coreexplain/fixtures"
)

var musl = fixtures.Variant{CC: "musl-gcc"}

func crash(t *testing.T, name string, v fixtures.Variant) *fixtures.Crash {
	t.Helper()
	if v.Musl() {
		if _, err := exec.LookPath(v.CC); err != nil {
			t.Skipf("%s not installed (Debian package musl-tools)", v.CC)
		}
	}
	f, err := fixtures.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func load(t *testing.T, c *fixtures.Crash) (*coredump.Process, *libc.Runtime) {
	t.Helper()
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	r, err := libc.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, r
}

// tidValue parses a "FACT key=TID:VALUE" value.
func tidValue(t *testing.T, s string) (int, int) {
	t.Helper()
	a, b, ok := strings.Cut(s, ":")
	tid, err1 := strconv.Atoi(a)
	v, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("bad FACT value %q", s)
	}
	return tid, v
}

// hostGlibcVersion is what getconf says about this machine's glibc, the
// one the fixtures ran with.
func hostGlibcVersion(t *testing.T) string {
	out, err := exec.Command("getconf", "GNU_LIBC_VERSION").Output()
	if err != nil {
		t.Skipf("getconf GNU_LIBC_VERSION: %v", err)
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "glibc ")
}

// Every thread's errno is read back exactly as the program printed it, for
// the glibc dynamic and the static musl build; the crashing thread's value
// is flagged as overwritten by the runtime's crash path.
func TestErrnoPerThread(t *testing.T) {
	// Stripped builds (-s -w) keep neither .symtab nor DWARF: musl's
	// __errno_location is found by its code, Go frames are named from
	// .gopclntab.
	// An older toolchain (through GOTOOLCHAIN) has other runtime layouts
	// but the same crash path.
	for _, v := range []fixtures.Variant{fixtures.Default, musl, {Strip: true}, {CC: "musl-gcc", Strip: true}, {Go: "go1.22.12"}} {
		t.Run(v.String(), func(t *testing.T) {
			c := crash(t, "cgo-errno-threads", v)
			p, r := load(t, c)
			facts := c.Oracle.Facts["errno"]
			if len(facts) != 5 {
				t.Fatalf("fixture printed %d errno facts, want 5: %q", len(facts), facts)
			}
			for _, f := range facts {
				tid, want := tidValue(t, f)
				th := r.Thread(tid)
				if th == nil || th.Errno == nil {
					t.Errorf("thread %d: no errno (%+v)", tid, th)
					continue
				}
				if th.Errno.Err != nil || int(th.Errno.Value) != want {
					t.Errorf("thread %d: errno %d (%v), program set %d", tid, th.Errno.Value, th.Errno.Err, want)
				}
				if th.Clobbered != nil {
					t.Errorf("thread %d: flagged as clobbered: %s", tid, th.Clobbered.Why)
				}
			}
			tid, atFault := tidValue(t, c.Oracle.Facts["errno_at_fault"][0])
			th := r.Thread(tid)
			if th == nil || th.Clobbered == nil || th.Clobbered.Frame.Func != "runtime.dieFromSignal" {
				t.Fatalf("crashing thread %d: errno not flagged as overwritten by the crash path: %+v", tid, th)
			}
			if int(th.Errno.Value) == atFault || th.Errno.Value != 22 {
				t.Errorf("crashing thread %d: errno %d; the crash path's sigaction leaves EINVAL (22), the program set %d", tid, th.Errno.Value, atFault)
			}
			// The TCB of every thread is intact.
			for _, th := range r.Threads {
				if len(th.Problems) > 0 {
					t.Errorf("thread %d: %v", th.TID, th.Problems)
				}
				if got, ok := th.TCB.Get("tid"); !ok || int(got) != th.TID {
					t.Errorf("thread %d: TCB tid %d (%v)", th.TID, got, ok)
				}
				if got, ok := th.TCB.Get("self"); !ok || got != th.TP {
					t.Errorf("thread %d: TCB self %#x, tp %#x", th.TID, got, th.TP)
				}
			}
			if len(r.Errno) != 1 || r.Mixed() {
				t.Errorf("%d errno implementations, %d C libraries; want one of each", len(r.Errno), len(r.Libs))
			}
			e := r.Errno[0]
			b := r.Binding(p.Exe)
			if b == nil || b.Impl != e || !b.Resolved {
				t.Errorf("executable's binding %+v, want %s", b, e)
			}
			if v.Musl() {
				if r.Flavor != libc.Musl || r.Linkage != libc.Static || r.Loader != "" {
					t.Errorf("identity %s %s loader %q, want static musl", r.Flavor, r.Linkage, r.Loader)
				}
				if e.Shape != libc.Musl || e.Kind != libc.KindTPConst || e.Offset != 0x34 || e.Image != p.Exe || (e.Found == "code pattern") != v.Strip {
					t.Errorf("musl __errno_location: %+v", e)
				}
				if r.Version != "1.2.2 or later" {
					t.Errorf("musl version %q", r.Version)
				}
				return
			}
			if r.Flavor != libc.Glibc || r.Linkage != libc.Dynamic || !strings.Contains(r.Loader, "ld-linux") {
				t.Errorf("identity %s %s loader %q, want dynamic glibc", r.Flavor, r.Linkage, r.Loader)
			}
			if want := hostGlibcVersion(t); r.Version != want {
				t.Errorf("glibc version %q, getconf says %q", r.Version, want)
			}
			if e.Shape != libc.Glibc || e.Kind != libc.KindTPOffGOT || e.Image.Name() != "libc.so.6" || !strings.Contains(e.CrossCheck, "(agrees)") {
				t.Errorf("glibc __errno_location: %+v", e)
			}
			if len(r.Modules) < 3 || r.Module(p.Exe) == nil {
				t.Errorf("link_map chain: %d modules, executable found %v", len(r.Modules), r.Module(p.Exe) != nil)
			}
		})
	}
}

// gdb, with libthread_db, prints glibc's errno per thread from a core:
// every thread must agree with it.
func TestErrnoMatchesGDB(t *testing.T) {
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skip("gdb not installed")
	}
	c := crash(t, "cgo-errno-threads", fixtures.Default)
	_, r := load(t, c)
	out, err := exec.Command("gdb", "-batch", "-nx", "-ex", "thread apply all p errno", c.Binary, c.Core).CombinedOutput()
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
	// "Thread 3 (Thread 0x7f... (LWP 1234)):" then "$3 = 13".
	lines := strings.Split(string(out), "\n")
	checked := 0
	for i, l := range lines {
		j := strings.Index(l, "(LWP ")
		if !strings.HasPrefix(l, "Thread ") || j < 0 || i+1 >= len(lines) {
			continue
		}
		tid, _ := strconv.Atoi(strings.TrimRight(l[j+5:], "):"))
		k := i + 1
		for k < len(lines) && !strings.HasPrefix(lines[k], "$") && !strings.HasPrefix(lines[k], "Thread ") {
			k++ // gdb's warnings
		}
		if k == len(lines) {
			continue
		}
		_, val, ok := strings.Cut(lines[k], " = ")
		if !ok {
			continue
		}
		want, _ := strconv.Atoi(strings.TrimSpace(val))
		th := r.Thread(tid)
		if th == nil || th.Errno == nil || int(th.Errno.Value) != want {
			t.Errorf("thread %d: gdb says errno %d, we read %+v", tid, want, th)
		}
		checked++
	}
	if checked != len(r.Threads) {
		t.Errorf("compared %d threads with gdb, the core has %d:\n%s", checked, len(r.Threads), out)
	}
}

// A shared object that carries musl's libc.a brings a second, hidden
// __errno_location into a glibc process; its slot is glibc's
// pointer_guard.
func TestErrnoMix(t *testing.T) {
	if _, err := exec.LookPath("musl-gcc"); err != nil {
		t.Skip("musl-gcc not installed (the fixture's shared object is built with it)")
	}
	c := crash(t, "cgo-errno-mix", fixtures.Default)
	_, r := load(t, c)
	if !r.Mixed() || r.Flavor != libc.Glibc {
		t.Fatalf("C libraries %v, want glibc plus an embedded musl", r.Libs)
	}
	var glibcImpl, muslImpl *libc.ErrnoImpl
	for _, e := range r.Errno {
		switch {
		case e.Image.Name() == "libc.so.6":
			glibcImpl = e
		case e.Image.Name() == "libmuslstatic.so":
			muslImpl = e
		}
	}
	if glibcImpl == nil || muslImpl == nil || len(r.Errno) != 2 {
		t.Fatalf("errno implementations %v", r.Errno)
	}
	if !muslImpl.Hidden || muslImpl.Found != ".symtab" || muslImpl.Shape != libc.Musl || muslImpl.Offset != 0x34 {
		t.Errorf("musl copy: %+v", muslImpl)
	}
	if l := r.Lib(muslImpl.Image); l == nil || l.Flavor != libc.Musl || !l.Embedded {
		t.Errorf("libmuslstatic.so not listed as an embedded musl: %v", l)
	}
	tid, want := tidValue(t, c.Oracle.Facts["musl_errno"][0])
	th := r.Thread(tid)
	if th == nil {
		t.Fatalf("no thread %d", tid)
	}
	var muslSlot *libc.ErrnoValue
	for _, s := range th.Slots {
		if s.Impl == muslImpl {
			muslSlot = s
		}
	}
	if muslSlot == nil || int(muslSlot.Value) != want || muslSlot.Addr != th.TP+0x34 {
		t.Errorf("thread %d: musl's slot %+v, program saw errno %d at %%fs:0x34", tid, muslSlot, want)
	}
	pg, _ := th.TCB.Get("pointer_guard")
	if uint32(pg>>32) != uint32(want) {
		t.Errorf("pointer_guard %#x: upper half should hold musl's errno %d", pg, want)
	}
	found := false
	for _, pr := range th.Problems {
		found = found || strings.Contains(pr.What, "pointer_guard")
	}
	if !found {
		t.Errorf("thread %d: damaged pointer_guard not reported: %v", tid, th.Problems)
	}
	f := r.Fault()
	if f == nil || f.TID != tid || f.Info.Signo != coredump.SIGSEGV || f.Info.Code != coredump.SI_KERNEL {
		t.Errorf("fault %+v, want SIGSEGV SI_KERNEL on thread %d", f, tid)
	}
}

// glibc's abort message, for a failed assert and a double free.
func TestAbortMessage(t *testing.T) {
	for _, name := range []string{"cgo-abort-assert", "cgo-double-free"} {
		t.Run(name, func(t *testing.T) {
			c := crash(t, name, fixtures.Default)
			_, r := load(t, c)
			want := c.Fixture.Spec.Expect["abort_message"].(string)
			m, err := r.AbortMessage()
			if err != nil || m == nil || !strings.Contains(m.Text, want) {
				t.Fatalf("abort message %+v (%v), want %q", m, err, want)
			}
			if !strings.Contains(c.Stderr, m.Text) {
				t.Errorf("message %q is not what the program printed:\n%s", m.Text, c.Stderr)
			}
			f := r.Fault()
			if f == nil || f.Info.Signo != coredump.SIGABRT || f.SignalFrame == nil {
				t.Fatalf("fault %+v, want the SIGABRT abort() raised, from its signal frame", f)
			}
			names := frameNames(f.CFrames())
			fn, _ := c.Fixture.Spec.Expect["c_function"].(string)
			if fn == "" {
				fn = c.Fixture.Spec.Expect["fault_function"].(string)
			}
			if !strings.Contains(names, "abort") || !strings.Contains(names, fn) {
				t.Errorf("C frames %s, want abort and %s", names, fn)
			}
		})
	}
}

func frameNames(fs []libc.Frame) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.String())
	}
	return strings.Join(s, " ← ")
}

// Chunks the fixture left in known states are classified as it says.
func TestChunks(t *testing.T) {
	c := crash(t, "cgo-malloc-chunks", fixtures.Default)
	_, r := load(t, c)
	facts := c.Oracle.Facts["chunk"]
	if len(facts) < 10 {
		t.Fatalf("fixture printed %d chunk facts", len(facts))
	}
	for _, f := range facts {
		a, state, _ := strings.Cut(f, ":")
		mem, err := strconv.ParseUint(strings.TrimPrefix(a, "0x"), 16, 64)
		if err != nil {
			t.Fatalf("bad fact %q", f)
		}
		for _, at := range []uint64{mem, mem + 7} { // the user pointer and an interior one
			ch, err := r.Chunk(at)
			if err != nil {
				t.Errorf("%s: Chunk(%#x): %v", f, at, err)
				continue
			}
			if ch.Mem != mem || ch.Addr != mem-16 {
				t.Errorf("%s: Chunk(%#x) = %s", f, at, ch)
			}
			ok := false
			switch state {
			case "tcache", "arena-tcache":
				ok = ch.State == libc.ChunkFree && ch.List.Kind == libc.ListTcache && ch.PrevInUse
			case "fastbin":
				ok = ch.State == libc.ChunkFree && ch.List.Kind == libc.ListFastbin && ch.Size == 0x50
			case "unsorted":
				ok = ch.State == libc.ChunkFree && ch.List.Kind == libc.ListUnsorted && ch.Size == 0x510
			case "inuse", "arena-inuse":
				ok = ch.State == libc.ChunkInUse && ch.List == nil
			case "mmapped":
				ok = ch.State == libc.ChunkInUse && ch.Mmapped && ch.Size >= 1<<20
			}
			if strings.HasPrefix(state, "arena-") {
				ok = ok && ch.NonMainArena && !ch.MainArena && ch.Heap != 0
			} else if state != "mmapped" {
				ok = ok && ch.MainArena && !ch.NonMainArena
			}
			if !ok {
				t.Errorf("%s: got %s (%s)", f, ch, ch.How)
			}
		}
	}
	// The walk over every chunk meets each of them.
	seen := map[uint64]libc.ChunkState{}
	if err := r.Chunks(func(c *libc.Chunk) bool { seen[c.Mem] = c.State; return true }); err != nil {
		t.Errorf("Chunks: %v", err)
	}
	for _, f := range facts {
		a, state, _ := strings.Cut(f, ":")
		mem, _ := strconv.ParseUint(strings.TrimPrefix(a, "0x"), 16, 64)
		if _, ok := seen[mem]; !ok && state != "mmapped" {
			t.Errorf("Chunks did not visit %s", f)
		}
	}
	if _, err := r.Chunk(0x10); err == nil {
		t.Errorf("Chunk(0x10) succeeded")
	}
}

// A library with an __errno of its own, on general-dynamic TLS: the slot
// comes from emulating its call of __tls_get_addr through each thread's
// dtv. The program is built in a temporary directory.
func TestErrnoThroughTLSGetAddr(t *testing.T) {
	t.Setenv("COREEXPLAIN_FIXTURE_CACHE", t.TempDir())
	dir := t.TempDir()
	lib := dir + "/liberrno.so"
	libSrc := dir + "/liberrno.c"
	if err := os.WriteFile(libSrc, []byte(`static __thread int lib_errno;
int *__errno(void) { return &lib_errno; }
void lib_fail(int v) { *__errno() = v; }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-O1", "-o", lib, libSrc).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	f, err := fixtures.FromSource(t.TempDir(), "gen-tls-get-addr", fixtures.Spec{Lang: fixtures.LangC, Args: []string{lib}},
		map[string]string{"main.c": `#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) { fprintf(stderr, "%s\n", dlerror()); return 2; }
	void (*fail)(int) = (void (*)(int))dlsym(h, "lib_fail");
	fail(77);
	fprintf(stderr, "FACT lib_errno=%ld:77\n", (long)syscall(SYS_gettid));
	abort();
}
`})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	_, r := load(t, c)
	var impl *libc.ErrnoImpl
	for _, e := range r.Errno {
		if e.Image.Name() == "liberrno.so" {
			impl = e
		}
	}
	if impl == nil || impl.Kind != libc.KindTLSGetAddr || impl.Err != nil || impl.TLSModule == 0 {
		t.Fatalf("liberrno.so's __errno: %+v", impl)
	}
	tid, want := tidValue(t, c.Oracle.Facts["lib_errno"][0])
	th := r.Thread(tid)
	for _, s := range th.Slots {
		if s.Impl == impl {
			if s.Err != nil || int(s.Value) != want {
				t.Errorf("slot %+v, want %d", s, want)
			}
			return
		}
	}
	t.Errorf("thread %d has no slot for %s: %+v", tid, impl, th.Slots)
}

// A core cut short loses the highest mappings first (thread stacks,
// libraries): the C runtime view still loads, says what it could not
// read, and never panics.
func TestTruncatedCore(t *testing.T) {
	c := crash(t, "cgo-errno-threads", fixtures.Default)
	data, err := os.ReadFile(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	for _, frac := range []int{2, 10, 50, 90} {
		cut := t.TempDir() + "/core"
		if err := os.WriteFile(cut, data[:len(data)*frac/100], 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := coredump.Open(cut, c.Binary, coredump.Options{})
		if err != nil {
			continue // too short to hold the notes: Open says so
		}
		r, err := libc.Load(p)
		if err != nil {
			t.Errorf("%d%%: %v", frac, err)
		} else {
			r.Fault()
			r.AbortMessage()
			r.Chunks(func(*libc.Chunk) bool { return true })
			for _, th := range r.Threads {
				if th.Errno != nil && th.Errno.Err == nil && th.Errno.Value < 0 {
					t.Errorf("%d%%: thread %d errno %d", frac, th.TID, th.Errno.Value)
				}
			}
		}
		p.Close()
	}
}

func BenchmarkLoad(b *testing.B) {
	f, err := fixtures.Load("cgo-errno-threads")
	if err != nil {
		b.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := libc.Load(p); err != nil {
			b.Fatal(err)
		}
		p.Close()
	}
}

func BenchmarkChunk(b *testing.B) {
	f, err := fixtures.Load("cgo-malloc-chunks")
	if err != nil {
		b.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		b.Fatal(err)
	}
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	r, err := libc.Load(p)
	if err != nil {
		b.Fatal(err)
	}
	var addrs []uint64
	for _, fact := range c.Oracle.Facts["chunk"] {
		a, _, _ := strings.Cut(fact, ":")
		v, _ := strconv.ParseUint(strings.TrimPrefix(a, "0x"), 16, 64)
		addrs = append(addrs, v)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := r.Chunk(addrs[i%len(addrs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// A C program without Go: errno per thread of the glibc build and of the
// static musl build, which no crash path overwrites.
func TestErrnoPlainC(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, musl} {
		t.Run(v.String(), func(t *testing.T) {
			c := crash(t, "c-segv", v)
			_, r := load(t, c)
			facts := c.Oracle.Facts["errno"]
			if len(facts) != 2 {
				t.Fatalf("fixture printed %q", facts)
			}
			for _, f := range facts {
				tid, want := tidValue(t, f)
				th := r.Thread(tid)
				if th == nil || th.Errno == nil || int(th.Errno.Value) != want || th.Clobbered != nil || len(th.Problems) > 0 {
					t.Errorf("thread %d: %+v, program set %d", tid, th, want)
				}
			}
			flt := r.Fault()
			if flt == nil || flt.Info.Signo != coredump.SIGSEGV || flt.Info.Addr != 0xdeadbeef00 || len(flt.Frames) == 0 || flt.Frames[0].Func != "store" {
				t.Errorf("fault %+v", flt)
			}
		})
	}
}
