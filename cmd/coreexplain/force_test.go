package main

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// untrusted is the note of a binary --force could not let stand in.
const untrusted = "analysed anyway because of --force, but nothing is read from it: function names, source lines, the Go runtime's view (Go version, goroutines) and the findings that need them are not shown, only what the core itself holds (signal, threads, registers, mappings)"

var reRuntimeCall = regexp.MustCompile(`runtime\.call\d+`)

// --force with a binary that is not the program: nothing is named after
// the binary's code, no Go version or goroutine is read through its
// symbols, and a note says what was not trusted and why. The signal and
// threads the core itself records are still shown. Two other programs
// (a cgo binary for a pure Go core, another Go program of other segment
// sizes) and the program itself with its code shifted by one byte (same
// segments, other code, as a rebuild of changed source) are refused; the
// program itself with only its build ID changed is used, with a note.
func TestForceWrongBinary(t *testing.T) {
	nilMap := fixturetest.MustCrash(t, "go-nil-map", fixtures.Default)
	nilField := fixturetest.MustCrash(t, "go-nil-field", fixtures.Default)
	cgoWrite := fixturetest.MustCrash(t, "cgo-null-write", fixtures.Default)
	dir := t.TempDir()
	sameCode := filepath.Join(dir, "same-code")
	otherCode := filepath.Join(dir, "other-code")
	writeVariants(t, nilField.Binary, sameCode, otherCode)

	for _, tc := range []struct {
		name         string
		core, binary string
		why          string // "" = trusted
	}{
		{"go core, cgo binary", nilMap.Core, cgoWrite.Binary, "the core maps 0x400000-"},
		{"go core, other go binary", nilField.Core, nilMap.Binary, "the core maps 0x400000-0x"},
		{"same segments, other code", nilField.Core, otherCode, "return addresses on the threads' stacks that lie in its code follow no call instruction there"},
		{"same code, other build ID", nilField.Core, sameCode, ""},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			code, out, stderr := runCLI("--force", "--json", tc.core, tc.binary)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var r report.Report
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatal(err)
			}
			var note string
			for _, n := range r.Notes {
				if strings.HasPrefix(n, tc.binary+" does not match the core (build ID ") {
					note = n
				}
			}
			if note == "" {
				t.Fatalf("no note on the forced binary: %q", r.Notes)
			}
			_, text, _ := runCLI("--force", "--color=never", tc.core, tc.binary)
			if reRuntimeCall.MatchString(out) || reRuntimeCall.MatchString(text) {
				t.Errorf("%s in the report", reRuntimeCall.FindString(out+text))
			}
			if tc.why == "" {
				// The program's own code: the crash story is whole.
				if !strings.HasSuffix(note, "analysed anyway because of --force: its segments lie where the core maps the executable and the return addresses on the stacks follow calls in its code, but names and values read through it may be wrong") {
					t.Errorf("note %q", note)
				}
				if r.Signal == nil || r.Signal.Function != "main.(*Server).maxIdle" || len(r.Findings) == 0 || r.Findings[0].Class != "nil-deref" {
					t.Errorf("signal %+v, findings %d: want the nil-deref in main.(*Server).maxIdle", r.Signal, len(r.Findings))
				}
				if r.Process.GoVersion != runtime.Version() {
					t.Errorf("go_version %q, want %q (runtime.buildVersion in the core)", r.Process.GoVersion, runtime.Version())
				}
				return
			}
			if !strings.Contains(note, tc.why) || !strings.HasSuffix(note, untrusted) {
				t.Errorf("note %q\nwant it to contain %q and end %q", note, tc.why, untrusted)
			}
			if r.Process.GoVersion != "" || r.Goroutines != nil {
				t.Errorf("go_version %q, goroutines %v read through an untrusted binary", r.Process.GoVersion, r.Goroutines != nil)
			}
			// What the core itself records: the SIGABRT the runtime
			// raised to dump core, from NT_SIGINFO, and every thread.
			if r.Signal == nil || r.Signal.Name != "SIGABRT" || r.Signal.Code != "SI_TKILL" || r.Signal.Source != "NT_SIGINFO" || r.Signal.Function != "" {
				t.Errorf("signal %+v", r.Signal)
			}
			if len(r.Threads) == 0 {
				t.Error("no threads")
			}
			for _, th := range r.Threads {
				if th.Function != "" || th.State != "unknown" {
					t.Errorf("thread %d: state %s, function %q named through an untrusted binary", th.TID, th.State, th.Function)
				}
			}
			if r.Crash != nil {
				for _, f := range r.Crash.Frames {
					if f.Function != "" || f.File != "" {
						t.Errorf("crash frame %+v named through an untrusted binary", f)
					}
				}
			}
			for _, fd := range r.Findings {
				if fd.Location != nil && fd.Location.Function != "" {
					t.Errorf("finding %s at %s", fd.Class, fd.Location.Function)
				}
			}
			if code, _, stderr := runCLI("goroutines", "--force", tc.core, tc.binary); code != exitBadInput ||
				stderr != "coreexplain: "+tc.core+": goroutines are not read through "+tc.binary+": it does not match the core\n" {
				t.Errorf("goroutines: exit %d, %q", code, stderr)
			}
			for _, im := range r.Process.Images {
				if im.Path == r.Process.Exe && im.Status != "mismatch" {
					t.Errorf("executable image %+v", im)
				}
			}
		})
	}
}

// writeVariants writes two copies of a Go binary: sameCode with only its
// build ID changed (in the ELF note the core's copy of the header page
// holds), otherCode with, besides, every byte of its text after the first
// page shifted by one, so its segments are the same and its code is not.
func writeVariants(t *testing.T, bin, sameCode, otherCode string) {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	note := f.Section(".note.go.buildid")
	if note == nil {
		t.Fatal("no .note.go.buildid")
	}
	id := b[note.Offset+16 : note.Offset+note.Size]
	id = id[:bytes.IndexByte(append(id, 0), 0)]
	if n := bytes.Count(b, id); n != 1 {
		t.Fatalf("build ID found %d times", n)
	}
	id[len(id)-1] ^= 1
	if err := os.WriteFile(sameCode, b, 0o755); err != nil {
		t.Fatal(err)
	}
	text := f.Section(".text")
	if text == nil {
		t.Fatal("no .text")
	}
	start, end := text.Offset+0x1000, text.Offset+text.Size
	copy(b[start+1:end], b[start:end-1])
	if err := os.WriteFile(otherCode, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
