package diagnose_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/diagnose"
	"github.com/coreexplain/coreexplain/coredump/libc"
	"github.com/coreexplain/coreexplain/fixtures"
)

var musl = fixtures.Variant{CC: "musl-gcc"}

func needMusl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("musl-gcc"); err != nil {
		t.Skip("musl-gcc not installed (Debian package musl-tools)")
	}
}

func crashFixture(t *testing.T, name string, v fixtures.Variant) *fixtures.Crash {
	t.Helper()
	if v.Musl() {
		needMusl(t)
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

func diagnoseCrash(t *testing.T, c *fixtures.Crash) (*coredump.Process, []diagnose.Finding) {
	t.Helper()
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, diagnose.Run(diagnose.NewFacts(p))
}

func findClass(fs []diagnose.Finding, class string) *diagnose.Finding {
	for i := range fs {
		if string(fs[i].Class) == class {
			return &fs[i]
		}
	}
	return nil
}

func libcEvidence(f *diagnose.Finding) string {
	var b strings.Builder
	for _, e := range f.Evidence {
		b.WriteString(e.What + " = " + e.Value + "\n")
	}
	return b.String()
}

var libcClasses = []string{"libc-mix", "errno-slot-mismatch", "c-abort", "c-heap-corruption", "errno-wrong-thread"}

// Only the classes a crash calls for: no C-runtime finding on crashes that
// have nothing to do with it.
func TestNoLibcFindings(t *testing.T) {
	cases := []struct {
		name string
		v    fixtures.Variant
	}{
		{"cgo-errno-threads", fixtures.Default}, {"cgo-errno-threads", musl},
		{"cgo-malloc-chunks", fixtures.Default}, {"cgo-null-write", fixtures.Default},
		{"go-nil-field", fixtures.Default}, {"c-segv", fixtures.Default},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/"+tc.v.String(), func(t *testing.T) {
			_, fs := diagnoseCrash(t, crashFixture(t, tc.name, tc.v))
			for _, class := range libcClasses {
				if f := findClass(fs, class); f != nil {
					t.Errorf("unexpected %s: %s", class, f.Summary)
				}
			}
		})
	}
}

// Aborts from C: the message glibc kept, the frame that called into the C
// library, and for musl the hlt its checks execute.
func TestCAbort(t *testing.T) {
	cases := []struct {
		fixture, class, summary string
		v                       fixtures.Variant
	}{
		{"cgo-abort-assert", "c-abort", "Assertion `balance >= 0 && \"balance must not be negative\"' failed.", fixtures.Default},
		{"cgo-abort-assert", "c-abort", "a C assertion failed in check_balance", musl},
		{"cgo-stack-smash", "c-abort", "*** stack smashing detected ***: terminated", fixtures.Default},
		{"cgo-stack-smash", "c-abort", "the stack protector (__stack_chk_fail) found the canary overwritten and musl stopped the process with hlt", musl},
		{"cgo-double-free", "c-heap-corruption", "free(): double free detected in tcache 2", fixtures.Default},
		{"cgo-double-free", "c-heap-corruption", "inside the C library's", musl},
	}
	for _, tc := range cases {
		t.Run(tc.fixture+"/"+tc.v.String(), func(t *testing.T) {
			c := crashFixture(t, tc.fixture, tc.v)
			_, fs := diagnoseCrash(t, c)
			f := findClass(fs, tc.class)
			if f == nil {
				t.Fatalf("no %s finding in %+v", tc.class, fs)
			}
			if !f.Cause || !strings.Contains(f.Summary, tc.summary) {
				t.Errorf("%s (cause %v): %s\nwant it to say %q", tc.class, f.Cause, f.Summary, tc.summary)
			}
			// c_function: the program's C function that called into the
			// C library (fault_function where the crash story starts there
			// too).
			want, _ := c.Fixture.Spec.Expect["c_function"].(string)
			if want == "" {
				want = c.Fixture.Spec.Expect["fault_function"].(string)
			}
			if f.Location == nil || f.Location.Function != want {
				t.Errorf("location %+v, want %s", f.Location, want)
			}
			if len(fs) == 0 || string(fs[0].Class) != tc.class {
				t.Errorf("first finding %s, want %s", fs[0].Class, tc.class)
			}
			if tc.class == "c-heap-corruption" && !tc.v.Musl() {
				// The block freed twice is named with its tcache bin.
				freed := c.Oracle.Facts["freed"][0]
				if !strings.Contains(libcEvidence(f), "user pointer "+freed) || !strings.Contains(libcEvidence(f), "already free in tcache bin") {
					t.Errorf("evidence does not name the chunk %s freed twice:\n%s", freed, libcEvidence(f))
				}
				if a := findClass(fs, "c-abort"); a == nil || a.Cause {
					t.Errorf("c-abort should accompany the heap corruption as a related finding: %+v", a)
				}
			}
		})
	}
}

// The shared object carrying musl's libc.a: two errno slots, one of them
// glibc's pointer_guard, whose damage crashes longjmp.
func TestErrnoSlotMismatch(t *testing.T) {
	needMusl(t)
	c := crashFixture(t, "cgo-errno-mix", fixtures.Default)
	_, fs := diagnoseCrash(t, c)
	f := findClass(fs, "errno-slot-mismatch")
	if f == nil {
		t.Fatalf("no errno-slot-mismatch in %+v", fs)
	}
	tid, _, _ := strings.Cut(c.Oracle.Facts["musl_errno"][0], ":")
	ev := libcEvidence(f)
	for _, want := range []string{
		"libc.so.6`__errno_location (exported) puts errno at %fs-0x88",
		"libmuslstatic.so`___errno_location (hidden, named only by .symtab) puts errno at %fs+0x34",
		"thread " + tid + ": libmuslstatic.so`___errno_location's errno slot holds 34 (ERANGE",
		"tcbhead_t.pointer_guard",
		"thread " + tid + ": pointer_guard at %fs:0x30",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	if !f.Cause || fs[0].Class != "errno-slot-mismatch" {
		t.Errorf("errno-slot-mismatch should be the cause: %s", f.Summary)
	}
	if findClass(fs, "libc-mix") == nil {
		t.Errorf("no libc-mix")
	}
}

// The same answers for programs this repository does not contain, built
// and crashed in a temporary directory.
func TestGeneralityInvalidFree(t *testing.T) {
	src := `#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ready, never;

static void *probe(void *arg) {
	long kind = (long)arg;
	int rc = kind == 0 ? open("/nonexistent/dir/file", O_RDONLY)
	       : kind == 1 ? close(-1)
	       : kill(0x3fffffff, 0);
	int e = errno;
	fprintf(stderr, "FACT errno=%ld:%d\n", (long)syscall(SYS_gettid), e);
	errno = e;
	(void)rc;
	pthread_mutex_lock(&mu);
	ready++;
	pthread_cond_broadcast(&cv);
	while (!never)
		pthread_cond_wait(&cv, &mu);
	return NULL;
}

__attribute__((noinline, noclone)) void drop_buffer(char *p) {
	free(p + 16);
	fprintf(stderr, "survived\n");
}

int main(void) {
	pthread_t t[3];
	for (long i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, probe, (void *)i);
	pthread_mutex_lock(&mu);
	while (ready < 3)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	char *buf = malloc(100);
	drop_buffer(buf);
	return 0;
}
`
	for _, v := range []fixtures.Variant{fixtures.Default, musl} {
		t.Run(v.String(), func(t *testing.T) {
			if v.Musl() {
				needMusl(t)
			}
			c := crashSource(t, "gen-invalid-free", src, v, nil)
			p, fs := diagnoseCrash(t, c)
			rt, err := libc.Of(p)
			if err != nil {
				t.Fatal(err)
			}
			facts := c.Oracle.Facts["errno"]
			if len(facts) != 3 {
				t.Fatalf("program printed %q", facts)
			}
			for _, fact := range facts {
				a, b, _ := strings.Cut(fact, ":")
				tid, _ := strconv.Atoi(a)
				want, _ := strconv.Atoi(b)
				th := rt.Thread(tid)
				if th == nil || th.Errno == nil || int(th.Errno.Value) != want || th.Clobbered != nil {
					t.Errorf("thread %d: errno %+v, program saw %d", tid, th, want)
				}
			}
			f := findClass(fs, "c-heap-corruption")
			if f == nil || !f.Cause || f.Location == nil || f.Location.Function != "drop_buffer" {
				t.Fatalf("c-heap-corruption: %+v\nall: %+v", f, fs)
			}
			if !v.Musl() && !strings.Contains(f.Summary, "free(): invalid pointer") {
				t.Errorf("summary %q lacks glibc's message", f.Summary)
			}
			for _, class := range []string{"libc-mix", "errno-slot-mismatch"} {
				if findClass(fs, class) != nil {
					t.Errorf("unexpected %s", class)
				}
			}
		})
	}
}

// A glibc program that dlopen()s musl's libc.so (not the fixture's
// embedded copy) and dies in exit() when the damaged pointer_guard
// demangles its atexit handler.
func TestGeneralityDlopenMusl(t *testing.T) {
	needMusl(t)
	// musl's libc.so is also its dynamic loader: ask a musl program
	// which file that is.
	dir := t.TempDir()
	hello := filepath.Join(dir, "hello")
	if err := os.WriteFile(hello+".c", []byte("int main(void){return 0;}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("musl-gcc", "-o", hello, hello+".c").CombinedOutput(); err != nil {
		t.Fatalf("musl-gcc: %v\n%s", err, out)
	}
	ef, err := elf.Open(hello)
	if err != nil {
		t.Fatal(err)
	}
	var muslSO string
	for _, ph := range ef.Progs {
		if ph.Type == elf.PT_INTERP {
			b := make([]byte, ph.Filesz)
			ph.ReadAt(b, 0)
			muslSO = strings.TrimRight(string(b), "\x00")
		}
	}
	ef.Close()
	if muslSO == "" {
		t.Skip("musl-gcc builds static binaries only here")
	}
	src := `#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static void flush_logs(void) { fputs("flushed\n", stderr); }

int main(int argc, char **argv) {
	atexit(flush_logs);
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
	long (*parse)(const char *, char **, int) = (long (*)(const char *, char **, int))dlsym(h, "strtol");
	parse("123456789012345678901234567890", 0, 10);
	fprintf(stderr, "FACT musl_errno=%ld:%d\n", (long)syscall(SYS_gettid), ERANGE);
	exit(0);
}
`
	c := crashSource(t, "gen-dlopen-musl", src, fixtures.Default, []string{muslSO})
	_, fs := diagnoseCrash(t, c)
	f := findClass(fs, "errno-slot-mismatch")
	if f == nil || !f.Cause {
		t.Fatalf("errno-slot-mismatch: %+v\nall: %+v", f, fs)
	}
	tid, _, _ := strings.Cut(c.Oracle.Facts["musl_errno"][0], ":")
	ev := libcEvidence(f)
	for _, want := range []string{"puts errno at %fs+0x34", "thread " + tid + ": libc.so`__errno_location's errno slot holds 34 (ERANGE",
		"AT_RANDOM+8"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	if m := findClass(fs, "libc-mix"); m == nil || !strings.Contains(m.Summary, "musl") || !strings.Contains(m.Summary, "glibc") {
		t.Errorf("libc-mix: %+v", m)
	}
}

// crashSource builds a C program from source in a temporary directory and
// crashes it, with the fixture cache there too.
func crashSource(t *testing.T, name, src string, v fixtures.Variant, args []string) *fixtures.Crash {
	t.Helper()
	t.Setenv("COREEXPLAIN_FIXTURE_CACHE", t.TempDir())
	f, err := fixtures.FromSource(t.TempDir(), name, fixtures.Spec{Lang: fixtures.LangC, Args: args}, map[string]string{"main.c": src})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A goroutine reads errno in a second cgo call after moving to another
// thread: the thread that ran the first call still holds the value.
func TestErrnoWrongThread(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, musl} {
		t.Run(v.String(), func(t *testing.T) {
			c := crashFixture(t, "cgo-errno-wrong-thread", v)
			_, fs := diagnoseCrash(t, c)
			checkWrongThread(t, c, fs, []string{"C.try_connect", "C.last_error"})
		})
	}
}

func checkWrongThread(t *testing.T, c *fixtures.Crash, fs []diagnose.Finding, calls []string) {
	t.Helper()
	f := findClass(fs, "errno-wrong-thread")
	if f == nil {
		t.Fatalf("no errno-wrong-thread in %+v", fs)
	}
	setTID, setVal, _ := strings.Cut(c.Oracle.Facts["errno_set"][0], ":")
	readTID, _, _ := strings.Cut(c.Oracle.Facts["errno_read"][0], ":")
	if !strings.Contains(f.Summary, "the read ran on thread "+readTID) || !strings.Contains(f.Summary, "thread "+setTID+" still holds "+setVal) {
		t.Errorf("summary %q: want the read on thread %s and %s on thread %s", f.Summary, readTID, setVal, setTID)
	}
	ev := libcEvidence(f)
	for _, call := range calls {
		if !strings.Contains(ev, call) {
			t.Errorf("evidence lacks the cgo call %s:\n%s", call, ev)
		}
	}
	if !strings.Contains(ev, "not locked to an OS thread") {
		t.Errorf("evidence lacks lockedm:\n%s", ev)
	}
}

// The same mistake in a program the repository does not contain: a
// worker goroutine, another errno, the message in words.
func TestGeneralityErrnoWrongThread(t *testing.T) {
	t.Setenv("COREEXPLAIN_FIXTURE_CACHE", t.TempDir())
	src := `package main

/*
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static long tid(void) { return syscall(SYS_gettid); }

int open_config(void) {
	fprintf(stderr, "FACT errno_set=%ld:%d\n", tid(), EACCES);
	errno = EACCES;
	return -1;
}

int config_error(void) {
	fprintf(stderr, "FACT errno_read=%ld:%d\n", tid(), errno);
	return errno;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void park_thread(void) {
	pthread_mutex_lock(&mu);
	pthread_mutex_lock(&mu);
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"syscall"
)

func load(done chan error) {
	if C.open_config() < 0 {
		moved := make(chan bool)
		go func() {
			runtime.LockOSThread()
			moved <- true
			C.park_thread()
		}()
		<-moved
		e := syscall.Errno(C.config_error())
		if e != syscall.EACCES {
			panic(fmt.Sprintf("open config: %v", e))
		}
	}
	done <- nil
}

func main() {
	runtime.GOMAXPROCS(1)
	done := make(chan error)
	go load(done)
	<-done
}
`
	f, err := fixtures.FromSource(t.TempDir(), "gen-errno-wrong-thread", fixtures.Spec{Lang: fixtures.LangCgo},
		map[string]string{"main.go": src, "go.mod": "module gen/wrongthread\n\ngo 1.21\n"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	_, fs := diagnoseCrash(t, c)
	checkWrongThread(t, c, fs, []string{"C.open_config", "C.config_error"})
}

// cgo's two-result call reads errno inside the call that set it: a panic
// about that errno is no errno-wrong-thread, even with other cgo calls
// around it.
func TestGeneralityErrnoTwoResultCall(t *testing.T) {
	t.Setenv("COREEXPLAIN_FIXTURE_CACHE", t.TempDir())
	src := `package main

/*
#include <errno.h>

int open_config(void) { errno = EACCES; return -1; }
int config_retries(void) { return 3; }
*/
import "C"

import (
	"fmt"
	"runtime"
)

func main() {
	runtime.GOMAXPROCS(1)
	n := C.config_retries()
	if _, err := C.open_config(); err != nil {
		panic(fmt.Sprintf("open config after %d tries: %v", n, err))
	}
}
`
	f, err := fixtures.FromSource(t.TempDir(), "gen-errno-two-result", fixtures.Spec{Lang: fixtures.LangCgo},
		map[string]string{"main.go": src, "go.mod": "module gen/tworesult\n\ngo 1.21\n"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Stderr, "permission denied") {
		t.Fatalf("program did not panic as planned:\n%s", c.Stderr)
	}
	_, fs := diagnoseCrash(t, c)
	if w := findClass(fs, "errno-wrong-thread"); w != nil {
		t.Errorf("errno-wrong-thread on a two-result cgo call: %s", w.Summary)
	}
}
