package dlvext_test

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/fixtures"
)

func dlvCore(t testing.TB, c *fixtures.Crash, cmds ...string) []string {
	t.Helper()
	return dlv(t, []string{"core", c.Binary, c.Core}, cmds...)
}

// TestDelveNilDeref: explain names the nil dereference and the field, and
// selects the faulting frame; gm names the crashing thread's M as the
// runtime did.
func TestDelveNilDeref(t *testing.T) {
	c := crash(t, "go-nil-field", fixtures.Default)
	report := reportOf(t, "--json", c.Core, c.Binary)
	out := dlvCore(t, c, "help gm", "gm", "explain", "explain "+report, "whatis s", "help gm", "gm")
	mustContain(t, "explain without a report", out[2],
		"fault recorded in the goroutine (g.sig): SIGSEGV code 1 at address 0x80",
		"main.(*Server).maxIdle", "nil pointer dereference")
	mustContain(t, "explain REPORT", out[3], "[nil-deref, high]", "Limits.MaxIdle", "*main.Config",
		fmt.Sprintf("selected goroutine %d frame", c.Oracle.Goroutine), ": main.(*Server).maxIdle main.go:24")
	// The selection is Delve's own: s is the receiver of maxIdle.
	mustContain(t, "whatis s after explain", out[4], "*main.Server")
	checkCrashingM(t, "gm", out[1], c)
	checkCrashingM(t, "gm after explain", out[6], c)
	// Loading a report rebinds the commands; their help must stay.
	if out[0] != out[5] || !strings.Contains(out[0], "Threads, Ms and goroutines") {
		t.Errorf("help gm changed when the report was loaded:\n%s\nthen\n%s", out[0], out[5])
	}
}

// TestDelveDanglingSlice: the cgo-dangling-slice core. The slice header
// lived in registers of a frame above runtime.sigpanic, which the core does
// not record, so slicecheck must say so instead of printing zeros, and
// addrinfo calls the data pointer unmapped.
func TestDelveDanglingSlice(t *testing.T) {
	c := crash(t, "cgo-dangling-slice", fixtures.Default)
	data := fact(t, c.Oracle.Facts, "data")
	report := reportOf(t, "--json", c.Core, c.Binary)
	out := dlvCore(t, c, "explain "+report, "slicecheck data", "addrinfo "+data, "gm")
	mustContain(t, "explain", out[0], "[dangling-slice, high]", "selected goroutine 1 frame", ": main.checksum main.go:")
	mustContain(t, "slicecheck data", out[1], "unreadable", "frames above runtime.sigpanic lose them",
		"coreexplain: Dangling slice data")
	mustContain(t, "addrinfo", out[2], data+"  unmapped", "not mapped", "DANGLING")
	checkCrashingM(t, "gm", out[3], c)
}

// TestDelveDanglingSliceField: a slice over freed C memory whose header is
// in the heap: slicecheck and addrinfo call it unmapped, with its length.
func TestDelveDanglingSliceField(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {CC: "musl-gcc"}} {
		t.Run(v.String(), func(t *testing.T) {
			c := crash(t, "cgo-dangling-slice-field", v)
			data, n := fact(t, c.Oracle.Facts, "data"), fact(t, c.Oracle.Facts, "len")
			report := reportOf(t, "--json", c.Core, c.Binary)
			out := dlvCore(t, c, "explain "+report, "slicecheck pending[0].body", "addrinfo "+data,
				"slicecheck pending", "gm")
			mustContain(t, "explain", out[0], "selected goroutine 1 frame", ": main.checksum main.go:")
			mustContain(t, "slicecheck", out[1], fmt.Sprintf("data %s, len %s, cap %s", data, n, n), "not mapped",
				"DANGLING: bytes 0x0-0x100000 of the backing array: unmapped")
			mustContain(t, "addrinfo", out[2], data+"  unmapped", "DANGLING")
			mustContain(t, "slicecheck pending", out[3], "len 1, cap 1", "Go heap object", "allocated", "ok:")
			checkCrashingM(t, "gm", out[4], c)
		})
	}
}

// TestDelveHeapAndStacks: addrinfo on a live and a freed Go heap object and
// on the dead part of a goroutine's stack.
func TestDelveHeapAndStacks(t *testing.T) {
	c := crash(t, "go-heap-objects", fixtures.Default)
	live, freed := fact(t, c.Oracle.Facts, "live_odd"), fact(t, c.Oracle.Facts, "freed_odd")
	out := dlvCore(t, c, "addrinfo "+live, "addrinfo "+freed, "addrinfo runtime.allgs[1].sched.sp-8")
	mustContain(t, "live object", out[0], live+"  go-heap", "Go heap object "+live+"+0x0", "1152-byte elements", "allocated")
	mustContain(t, "freed object", out[1], freed+"  go-heap-freed", "FREE (not allocated)", "DANGLING")
	mustContain(t, "dead stack", out[2], "go-stack-dead", "below its sp", "(g.sched.sp): a dead frame")
}

// TestDelveErrno: errno of every thread, next to its tid, as the fixture's
// threads set it; the crashing thread's value is flagged as overwritten.
func TestDelveErrno(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {CC: "musl-gcc"}} {
		t.Run(v.String(), func(t *testing.T) {
			c := crash(t, "cgo-errno-threads", v)
			report := reportOf(t, "--json", c.Core, c.Binary)
			out := dlvCore(t, c, "explain "+report, "errno", "gm")
			checkErrno(t, out[1], c.Oracle.Facts)
			checkCrashingM(t, "gm", out[2], c)
		})
	}
}

// TestDelveLive: the commands on a live process; it keeps running.
func TestDelveLive(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {CC: "musl-gcc"}} {
		t.Run(v.String(), func(t *testing.T) {
			s := startLive(t, "live-cgo-workers", v)
			attach := []string{"attach", strconv.Itoa(s.pid), s.binary}
			data, n := fact(t, s.facts, "dangling_data"), fact(t, s.facts, "dangling_len")
			out := dlv(t, attach, "gm", "slicecheck main.pending.body", "slicecheck main.scratch",
				"addrinfo "+data, "explain", "errno")
			checkLiveGM(t, out[0], s)
			mustContain(t, "slicecheck main.pending.body", out[1], fmt.Sprintf("data %s, len %s, cap %s", data, n, n),
				"not mapped", "DANGLING: bytes 0x0-0x100000 of the backing array: unmapped")
			mustContain(t, "slicecheck main.scratch", out[2],
				fmt.Sprintf("data %s, len %s, cap %s", fact(t, s.facts, "live_data"), fact(t, s.facts, "live_len"), fact(t, s.facts, "live_cap")),
				"Go heap object "+fact(t, s.facts, "live_data")+"+0x0", "allocated", "ok:")
			mustContain(t, "addrinfo", out[3], data+"  unmapped", "DANGLING")
			mustContain(t, "explain", out[4], "no Go crash in progress (a live process)")
			mustContain(t, "errno without a report", out[5], "errno needs a coreexplain report")

			t.Run("errno", func(t *testing.T) {
				buildTools(t)
				if u, _ := exec.Command(tools.coreexplain, "attach", "--help").Output(); !strings.Contains(string(u), "coreexplain attach") {
					t.Skip("this coreexplain has no attach command yet (it comes with the live branch): no report on a live process")
				}
				report := reportOf(t, "attach", "--json", strconv.Itoa(s.pid))
				out := dlv(t, attach, "explain "+report, "errno")
				checkErrno(t, out[1], s.facts)
			})
		})
	}
}

// checkLiveGM: every thread the fixture locked to a goroutine shows that
// goroutine, in a cgo call; the fixture's C threads are non-Go threads.
func checkLiveGM(t *testing.T, gm string, s *service) {
	t.Helper()
	rows := byTID(table(t, gm))
	for tid, goid := range factPairs(t, s.facts["goroutine"]) {
		r := rows[tid]
		if r["G"] != goid || !strings.Contains(r["STATE"], "in C (cgo call), locked") || r["M"] == "-" {
			t.Errorf("thread %d: gm says M %s G %s %q, the fixture locked goroutine %s to it in C:\n%s", tid, r["M"], r["G"], r["STATE"], goid, gm)
		}
	}
	for tid := range factPairs(t, s.facts["errno"]) {
		if _, locked := factPairs(t, s.facts["goroutine"])[tid]; !locked && rows[tid]["STATE"] != "non-Go thread" {
			t.Errorf("C thread %d: gm says %q:\n%s", tid, rows[tid]["STATE"], gm)
		}
	}
}

// TestDelveOlderGo: Delve v1.27 promises Go 1.25 and later; with
// --check-go-version=false the helpers read a Go 1.22 binary's runtime
// (Ms, the heap, goroutine stacks) all the same.
func TestDelveOlderGo(t *testing.T) {
	c := crash(t, "go-nil-field", fixtures.Variant{Go: "go1.22.12"})
	report := reportOf(t, "--json", c.Core, c.Binary)
	out := dlv(t, []string{"core", "--check-go-version=false", c.Binary, c.Core},
		"explain "+report, "gm", "addrinfo runtime.allgs[1].sched.sp-8")
	mustContain(t, "explain", out[0], "Limits.MaxIdle", ": main.(*Server).maxIdle main.go:24")
	checkCrashingM(t, "gm", out[1], c)
	mustContain(t, "addrinfo", out[2], "go-stack-dead", "a dead frame")
}

// TestDelveStripped: without DWARF Delve cannot evaluate the runtime; the
// commands say so instead of failing on an unknown symbol, and addrinfo
// still classifies through the report's memory map.
func TestDelveStripped(t *testing.T) {
	c := crash(t, "go-nil-field", fixtures.Variant{Strip: true})
	report := reportOf(t, "--json", c.Core, c.Binary)
	out := dlvCore(t, c, "gm", "explain "+report, "addrinfo 0x80")
	for i, what := range []string{"gm", "explain"} {
		mustContain(t, what, out[i], "the executable has no DWARF")
	}
	mustContain(t, "explain", out[1], "coreexplain report on")
	mustContain(t, "addrinfo 0x80", out[2], "0x80  null-page", "DANGLING")
}

// TestDelveNilDerefInlined: the nil dereference in (*Account).balance,
// inlined into main.total: explain selects Delve's frame of the inlined
// method at the line the program printed, where a is the receiver.
func TestDelveNilDerefInlined(t *testing.T) {
	c := crash(t, "go-nil-inlined", fixtures.Default)
	report := reportOf(t, "--json", c.Core, c.Binary)
	out := dlvCore(t, c, "explain "+report, "whatis a")
	mustContain(t, "explain REPORT", out[0], "[nil-deref, high]", "reading its field Balance at offset 0x18",
		fmt.Sprintf(": %s main.go:%s", c.Oracle.Facts["fault_function"][0], c.Oracle.Facts["fault_line"][0]))
	mustContain(t, "whatis a after explain", out[1], "*main.Account")

	// Delve has no frame of the inlined call on Go 1.22 (its body starts
	// at the faulting instruction): explain says so and selects the caller.
	c = crash(t, "go-nil-inlined", fixtures.Variant{Go: "go1.22.12"})
	report = reportOf(t, "--json", c.Core, c.Binary)
	out = dlv(t, []string{"core", "--check-go-version=false", c.Binary, c.Core}, "explain "+report)
	mustContain(t, "explain REPORT (go1.22.12)", out[0], "Nil pointer dereference in main.(*Account).balance: a is nil",
		"main.(*Account).balance has no frame of its own in Delve's stack of goroutine 1 (an inlined call Delve did not unwind); selecting its caller",
		": main.total main.go:27")
}
