package goruntime_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

var updateFallback = flag.Bool("update-fallback", false, "regenerate fallback_go1*.go from the DWARF of fixtures built with every supported toolchain")

// fallbackToolchains are the toolchains the tables are generated from: the
// newest patch release of each supported minor version. "" is the toolchain
// running the tests (the newest release).
var fallbackToolchains = []string{"go1.21.13", "go1.22.12", "go1.23.12", "go1.24.13", "go1.25.14", ""}

// requestFixtures are run through the full report to learn what the
// readers ask Layout for: a pure Go panic, a cgo crash, a fatal error with
// several goroutines, a deadlock.
var requestFixtures = []string{"go-nil-field", "cgo-null-write", "go-concurrent-map", "go-deadlock"}

func fixtureCrash(t *testing.T, name string, v fixtures.Variant) *fixtures.Crash {
	t.Helper()
	return fixturetest.MustCrash(t, name, v)
}

// recordedRequests runs the report on the fixtures' cores built with v and
// returns every name asked of Layout.
func recordedRequests(t *testing.T, v fixtures.Variant) []goruntime.Request {
	t.Helper()
	var all [][]goruntime.Request
	for _, name := range requestFixtures {
		c := fixtureCrash(t, name, v)
		p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, goruntime.RecordRequests(func() {
			report.Build(p, report.Options{All: true})
		}))
		p.Close()
	}
	return goruntime.MergeRequests(all...)
}

func TestGenerateFallback(t *testing.T) {
	if !*updateFallback {
		t.Skip("run with -update-fallback to regenerate the tables")
	}
	for _, tc := range fallbackToolchains {
		v := fixtures.Variant{Go: tc}
		reqs := goruntime.MergeRequests(goruntime.BootstrapRequests(), recordedRequests(t, v))
		bin := fixtureCrash(t, "go-nil-field", v).Binary
		toolchain, src, err := goruntime.GenerateFallback(bin, reqs)
		if err != nil {
			t.Fatal(err)
		}
		gv, err := goruntime.ParseGoVersion(toolchain)
		if err != nil {
			t.Fatal(err)
		}
		out := fmt.Sprintf("fallback_go1%d.go", gv.Minor)
		if err := os.WriteFile(out, src, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d requests, from %s", out, len(reqs), toolchain)
	}
}

// Every table equals the DWARF of a fixture built with its toolchain.
func TestFallbackMatchesDWARF(t *testing.T) {
	for _, tc := range fallbackToolchains {
		name := tc
		if name == "" {
			name = "local"
		}
		t.Run(name, func(t *testing.T) {
			if tc != "" && testing.Short() {
				t.Skip("builds fixtures with older toolchains")
			}
			bin := fixtureCrash(t, "go-panic-wrapped", fixtures.Variant{Go: tc}).Binary
			toolchain, problems, err := goruntime.CheckFallback(bin)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("%s: %s", toolchain, p)
			}
		})
	}
}

// The table of the running toolchain answers every name the readers ask
// for while reporting on real cores, as DWARF does: a reader that starts
// asking for a new field fails here until the tables are regenerated.
func TestFallbackCoversRequests(t *testing.T) {
	reqs := recordedRequests(t, fixtures.Default)
	c := fixtureCrash(t, "go-nil-field", fixtures.Default)
	problems, err := goruntime.FallbackAnswers(c.Binary, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s (regenerate: go test ./coredump/goruntime -run TestGenerateFallback -update-fallback)", p)
	}
	t.Logf("%d requests recorded", len(reqs))
}

// A stripped binary (-ldflags=-s -w) gets its layout from the table, with
// the same offsets DWARF gives the unstripped build.
func TestStrippedLayout(t *testing.T) {
	full := fixtureCrash(t, "go-nil-field", fixtures.Default)
	stripped := fixtureCrash(t, "go-nil-field", fixtures.Variant{Strip: true})
	load := func(c *fixtures.Crash) *goruntime.Binary {
		p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		b, err := goruntime.LoadBinary(p.Exe)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fb, sb := load(full), load(stripped)
	if !fb.Layout.FromDWARF || sb.Layout.FromDWARF || !sb.Stripped || fb.Stripped {
		t.Fatalf("DWARF %v/%v, stripped %v/%v", fb.Layout.FromDWARF, sb.Layout.FromDWARF, fb.Stripped, sb.Stripped)
	}
	for _, x := range [][2]string{{"runtime.g", "sched.sp"}, {"runtime.g", "goid"}, {"runtime.g", "atomicstatus"},
		{"runtime.m", "procid"}, {"runtime.m", "curg"}, {"runtime.g", "stack.hi"}, {"runtime.mspan", "elemsize"}} {
		want, err := fb.Layout.Off(x[0], x[1])
		if err != nil {
			t.Fatal(err)
		}
		if got, err := sb.Layout.Off(x[0], x[1]); err != nil || got != want {
			t.Errorf("%s.%s: stripped %d (%v), DWARF %d", x[0], x[1], got, err, want)
		}
	}
	for _, c := range []string{"runtime._Grunning", "runtime._Gwaiting"} {
		want, _ := fb.Layout.Const(c)
		if got, ok := sb.Layout.Const(c); !ok || got != want {
			t.Errorf("%s: stripped %d %v, DWARF %d", c, got, ok, want)
		}
	}
	if n := len(sb.Layout.Consts("runtime.waitReason")); n < 20 {
		t.Errorf("%d wait reasons in the table", n)
	}
}

// The tables are generated files: none may be edited by hand into a state
// the generator would not write (same header, gofmt'd).
func TestFallbackFilesGenerated(t *testing.T) {
	files, _ := filepath.Glob("fallback_go1*.go")
	if len(files) < len(fallbackToolchains) {
		t.Fatalf("%d fallback tables, want one per toolchain (%d)", len(files), len(fallbackToolchains))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "// Code generated by go test ./coredump/goruntime -run TestGenerateFallback -update-fallback; DO NOT EDIT.") {
			t.Errorf("%s is not a generated table", f)
		}
	}
}
