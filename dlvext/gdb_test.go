package dlvext_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/fixtures"
)

func gdbCore(t testing.TB, c *fixtures.Crash, cmds ...string) []string {
	t.Helper()
	return gdb(t, []string{c.Binary, c.Core}, cmds...)
}

// TestGdbNilDeref: ce explain names the nil dereference and the field and
// selects the faulting frame; ce gm names the crashing thread's M.
func TestGdbNilDeref(t *testing.T) {
	c := crash(t, "go-nil-field", fixtures.Default)
	out := gdbCore(t, c, "ce gm", "ce explain", "info frame", "ce addrinfo 0x80")
	mustContain(t, "ce explain", out[1], "[nil-deref, high]", "Limits.MaxIdle", "*main.Config", "frame", ": main.(*Server).maxIdle main.go:24")
	mustContain(t, "info frame after ce explain", out[2], "main.(*Server).maxIdle")
	mustContain(t, "ce addrinfo 0x80", out[3], "0x80  null-page", "DANGLING")
	checkCrashingM(t, "ce gm", out[0], c)
}

// TestGdbDanglingSliceField: ce slicecheck and ce addrinfo call a slice
// over freed C memory unmapped, with its length, in glibc and static musl
// cores; gdb cannot unwind to the faulting Go frame through the runtime's
// system stack, so coreexplain evaluates the expression there.
func TestGdbDanglingSliceField(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {CC: "musl-gcc"}} {
		t.Run(v.String(), func(t *testing.T) {
			c := crash(t, "cgo-dangling-slice-field", v)
			data, n := fact(t, c.Oracle.Facts, "data"), fact(t, c.Oracle.Facts, "len")
			out := gdbCore(t, c, "ce explain", "ce slicecheck pending[0].body", "ce addrinfo "+data, "ce gm")
			mustContain(t, "ce explain", out[0], "main.checksum")
			mustContain(t, "ce slicecheck", out[1], fmt.Sprintf("data %s, len %s, cap %s", data, n, n), "unmapped",
				"DANGLING: bytes 0x0-0x100000 of the backing array: not mapped")
			mustContain(t, "ce addrinfo", out[2], data+"  unmapped", "DANGLING")
			checkCrashingM(t, "ce gm", out[3], c)
		})
	}
}

// TestGdbErrno: ce errno gives every thread's errno next to its tid, in
// glibc and static musl cores (gdb's own `p errno` fails for musl).
func TestGdbErrno(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {CC: "musl-gcc"}} {
		t.Run(v.String(), func(t *testing.T) {
			c := crash(t, "cgo-errno-threads", v)
			out := gdbCore(t, c, "ce errno", "ce gm")
			checkErrno(t, out[0], c.Oracle.Facts)
			checkCrashingM(t, "ce gm", out[1], c)
		})
	}
}

// TestGdbLive: the commands on a live process (gdb -p), glibc and static
// musl; the process keeps running.
func TestGdbLive(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {CC: "musl-gcc"}} {
		t.Run(v.String(), func(t *testing.T) {
			s := startLive(t, "live-cgo-workers", v)
			data, n := fact(t, s.facts, "dangling_data"), fact(t, s.facts, "dangling_len")
			out := gdb(t, []string{"-p", strconv.Itoa(s.pid), s.binary}, "ce gm", "ce errno", "ce slicecheck main.pending.body",
				"ce slicecheck main.scratch", "ce addrinfo "+data, "ce explain")
			checkLiveGM(t, out[0], s)
			checkErrno(t, out[1], s.facts)
			mustContain(t, "ce slicecheck main.pending.body", out[2], fmt.Sprintf("data %s, len %s, cap %s", data, n, n),
				"not mapped", "DANGLING: bytes 0x0-0x100000 of the backing array: unmapped")
			mustContain(t, "ce slicecheck main.scratch", out[3],
				fmt.Sprintf("data %s, len %s, cap %s", fact(t, s.facts, "live_data"), fact(t, s.facts, "live_len"), fact(t, s.facts, "live_cap")),
				"allocated", "ok:")
			mustContain(t, "ce addrinfo", out[4], data+"  unmapped", "DANGLING")
			// explain needs coreexplain's rules: gdb writes a core for it.
			mustContain(t, "ce explain", out[5], "writing a core of process "+strconv.Itoa(s.pid),
				fmt.Sprintf("coreexplain report on %s (pid %d)", s.binary, s.pid))
		})
	}
}

// TestSameAnswers: Delve and gdb give the same thread, M, goroutine and
// state for every thread of a core and of a live process, and gdb's errno
// equals Delve's where coreexplain's report gives Delve the slots.
func TestSameAnswers(t *testing.T) {
	compare := func(t *testing.T, what, a, b string, cols ...string) {
		t.Helper()
		ra, rb := byTID(table(t, a)), byTID(table(t, b))
		if len(ra) == 0 || len(ra) != len(rb) {
			t.Fatalf("%s: Delve lists %d threads, gdb %d:\n%s\n%s", what, len(ra), len(rb), a, b)
		}
		for tid, r := range ra {
			for _, c := range cols {
				if r[c] != rb[tid][c] {
					t.Errorf("%s: thread %d %s: Delve %q, gdb %q", what, tid, c, r[c], rb[tid][c])
				}
			}
		}
	}
	t.Run("core", func(t *testing.T) {
		c := crash(t, "cgo-errno-threads", fixtures.Default)
		report := reportOf(t, "--json", c.Core, c.Binary)
		d := dlvCore(t, c, "gm", "explain "+report, "errno")
		g := gdbCore(t, c, "ce gm", "ce errno")
		compare(t, "gm", d[0], g[0], "TP", "M", "G", "STATE")
		compare(t, "errno", d[2], g[1], "M", "SLOT", "VALUE", "NAME")
	})
	t.Run("live", func(t *testing.T) {
		s := startLive(t, "live-cgo-workers", fixtures.Default)
		d := dlv(t, []string{"attach", strconv.Itoa(s.pid), s.binary}, "gm")
		g := gdb(t, []string{"-p", strconv.Itoa(s.pid), s.binary}, "ce gm")
		compare(t, "gm", d[0], g[0], "TP", "M", "G", "STATE")
		if !strings.Contains(d[0], "non-Go thread") {
			t.Errorf("gm shows no C thread:\n%s", d[0])
		}
	})
}

// TestGdbStrippedAndOlderGo: a Go 1.22 binary reads like a current one; a
// stripped binary gets a clear answer, and coreexplain's report still
// explains the crash.
func TestGdbStrippedAndOlderGo(t *testing.T) {
	c := crash(t, "go-nil-field", fixtures.Variant{Go: "go1.22.12"})
	out := gdbCore(t, c, "ce gm", "ce explain")
	checkCrashingM(t, "ce gm on Go 1.22", out[0], c)
	mustContain(t, "ce explain on Go 1.22", out[1], "Limits.MaxIdle")

	c = crash(t, "go-nil-field", fixtures.Variant{Strip: true})
	out = gdbCore(t, c, "ce gm", "ce explain", "ce addrinfo 0x80")
	mustContain(t, "ce gm stripped", out[0], "the Go runtime is not readable through gdb")
	mustContain(t, "ce explain stripped", out[1], "coreexplain report on")
	mustContain(t, "ce addrinfo stripped", out[2], "0x80  null-page")
}
