package main

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
)

// coreexplain tls prints each thread's errno as the program left it.
func TestTLSCommand(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {CC: "musl-gcc"}} {
		t.Run(v.String(), func(t *testing.T) {
			if v.Musl() {
				if _, err := exec.LookPath("musl-gcc"); err != nil {
					t.Skip("musl-gcc not installed")
				}
			}
			f, err := fixtures.Load("cgo-errno-threads")
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.Crash(v)
			if err != nil {
				t.Fatal(err)
			}
			code, out, stderr := runCLI("tls", "--json", c.Core, c.Binary)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var r report.TLSReport
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("JSON: %v\n%s", err, out)
			}
			if r.Schema != report.TLSSchema || len(r.Threads) == 0 || len(r.Errno) != 1 {
				t.Fatalf("report: schema %q, %d threads, %d errno implementations", r.Schema, len(r.Threads), len(r.Errno))
			}
			byTID := map[int]report.TLSThread{}
			for _, th := range r.Threads {
				byTID[th.TID] = th
				if th.TCB == nil || len(th.TCB.Fields) == 0 || th.Errno == nil {
					t.Errorf("thread %d: TCB %+v errno %+v", th.TID, th.TCB, th.Errno)
				}
			}
			for _, fact := range c.Oracle.Facts["errno"] {
				a, b, _ := strings.Cut(fact, ":")
				tid, _ := strconv.Atoi(a)
				want, _ := strconv.Atoi(b)
				th, ok := byTID[tid]
				if !ok || th.Errno == nil || th.Errno.Value != want || th.Errno.Source == "" || th.Crash != nil {
					t.Errorf("thread %d: %+v, program set errno %d", tid, th.Errno, want)
				}
			}
			a, _, _ := strings.Cut(c.Oracle.Facts["errno_at_fault"][0], ":")
			tid, _ := strconv.Atoi(a)
			if th := byTID[tid]; th.Crash == nil || th.Crash.Function != "runtime.dieFromSignal" {
				t.Errorf("crashing thread %d: crash path not shown: %+v", tid, th.Crash)
			}
			code, text, _ := runCLI("tls", "--color", "never", c.Core, c.Binary)
			if code != exitOK || !strings.Contains(text, "errno 2 ENOENT (No such file or directory)") || !strings.Contains(text, "errno overwritten after the fault") {
				t.Errorf("text output (exit %d):\n%s", code, text)
			}
		})
	}
	if code, _, stderr := runCLI("tls"); code != exitUsage || !strings.Contains(stderr, "missing CORE") {
		t.Errorf("tls without CORE: exit %d, %q", code, stderr)
	}
}
