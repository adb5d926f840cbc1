package report_test

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
)

func openCrash(t *testing.T, name string, v fixtures.Variant) (*fixtures.Crash, *coredump.Process) {
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
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return c, p
}

// The report names the C library and gives each thread's errno, with the
// crashing thread's value marked as overwritten.
func TestReportLibcAndErrno(t *testing.T) {
	c, p := openCrash(t, "cgo-errno-threads", fixtures.Default)
	r := report.Build(p, report.Options{})
	l := r.Process.Libc
	if l == nil || l.Flavor != "glibc" || l.Linkage != "dynamic" || l.Version == "" || !strings.Contains(l.Loader, "ld-linux") {
		t.Fatalf("process.libc = %+v", l)
	}
	byTID := map[int]report.Thread{}
	for _, th := range r.Threads {
		byTID[th.TID] = th
	}
	for _, fact := range c.Oracle.Facts["errno"] {
		a, b, _ := strings.Cut(fact, ":")
		tid, _ := strconv.Atoi(a)
		want, _ := strconv.Atoi(b)
		e := byTID[tid].Errno
		if e == nil || e.Value != want || e.Name == "" || e.Addr == 0 || e.Note != "" {
			t.Errorf("thread %d: errno %+v, want %d", tid, e, want)
		}
	}
	a, _, _ := strings.Cut(c.Oracle.Facts["errno_at_fault"][0], ":")
	tid, _ := strconv.Atoi(a)
	if e := byTID[tid].Errno; e == nil || !strings.Contains(e.Note, "not the errno at the fault") {
		t.Errorf("crashing thread %d: errno %+v lacks the crash-path note", tid, e)
	}
}

// The TLS view of the two-libc process marks musl's slot as glibc's
// pointer_guard.
func TestTLSReportMix(t *testing.T) {
	if _, err := exec.LookPath("musl-gcc"); err != nil {
		t.Skip("musl-gcc not installed")
	}
	c, p := openCrash(t, "cgo-errno-mix", fixtures.Default)
	r, err := report.BuildTLS(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Libc.Runtimes) != 2 || len(r.Errno) != 2 {
		t.Fatalf("runtimes %+v, errno implementations %d", r.Libc.Runtimes, len(r.Errno))
	}
	a, b, _ := strings.Cut(c.Oracle.Facts["musl_errno"][0], ":")
	tid, _ := strconv.Atoi(a)
	want, _ := strconv.Atoi(b)
	for _, th := range r.Threads {
		if th.TID != tid {
			continue
		}
		if len(th.Slots) != 1 || th.Slots[0].Value != want || th.Slots[0].Overlaps != "pointer_guard" {
			t.Errorf("thread %d: other slots %+v, want musl's errno %d in pointer_guard", tid, th.Slots, want)
		}
		return
	}
	t.Errorf("no thread %d", tid)
}
