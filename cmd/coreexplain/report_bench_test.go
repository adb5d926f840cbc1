package main

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// BenchmarkReport100k runs the built coreexplain as a user would, for the
// full report with every goroutine's whole stack bucketed (--json --all),
// on the 100000-goroutine core: wall time per run, and the peak resident
// set of the process (MB-rss, the highest of the runs). go run
// ./fixtures/bench compares the same run with Delve and takes -scale 1m.
func BenchmarkReport100k(b *testing.B) {
	c := fixturetest.MustCrash(b, "go-many-goroutines", fixtures.Default)
	parked, err := strconv.Atoi(c.Oracle.Facts["parked"][0])
	if err != nil {
		b.Fatalf("FACT parked: %v", err)
	}
	bin := builtCommand(b)
	var maxRSS int64
	var total int
	for b.Loop() {
		cmd := exec.Command(bin, "--json", "--all", "--progress", "never", c.Core, c.Binary)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("coreexplain: %v%s", err, stderrOf(err))
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			maxRSS = max(maxRSS, ru.Maxrss) // KiB on Linux
		}
		b.StopTimer()
		total = createdByMain(b, out, parked)
		b.StartTimer()
	}
	b.ReportMetric(float64(maxRSS)/1024, "MB-rss")
	b.ReportMetric(float64(total), "goroutines")
}

// createdByMain checks that the report holds the goroutines main.main
// started, want of them, and returns its goroutine total.
func createdByMain(b *testing.B, out []byte, want int) int {
	var r report.Report
	if err := json.Unmarshal(out, &r); err != nil || r.Goroutines == nil {
		b.Fatalf("report without goroutines: %v", err)
	}
	n := 0
	for _, bk := range r.Goroutines.Buckets {
		if bk.CreatedBy != nil && bk.CreatedBy.Function == "main.main" {
			n += bk.Count
		}
	}
	if n != want {
		b.Fatalf("%d goroutines created by main.main in the report, the fixture parked %d", n, want)
	}
	return r.Goroutines.Total
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return "\n" + string(ee.Stderr)
	}
	return ""
}
