package main

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// A core cut at the places a user's cut core ends — inside the ELF header
// or program headers, before, inside and after the note segment, inside
// the copy of the executable's first page — either explains something
// (exit 0: a signal or a thread, and the truncation in the report) or
// exits 2 with a one-line reason. Never exit 0 with an empty story. The
// reasons are the exact ones the tool gives for each cut.
func TestTruncatedExitStatus(t *testing.T) {
	c := fixturetest.MustCrash(t, "go-nil-field", fixtures.Default)
	data, err := os.ReadFile(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.Open(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	var note, exeLoad *elf.Prog
	for _, p := range ef.Progs {
		switch {
		case p.Type == elf.PT_NOTE && note == nil:
			note = p
		case p.Type == elf.PT_LOAD && exeLoad == nil && p.Filesz > 0:
			exeLoad = p // the kernel dumps the executable's first page first
		}
	}
	if note == nil || exeLoad == nil {
		t.Fatal("core without a note segment or a dumped load segment")
	}
	phEnd := int64(64 + len(ef.Progs)*56)
	const prstatus = 336 // sizeof(struct elf_prstatus) on amd64
	cuts := []struct {
		name string
		keep int64
		want string // "" = a report (exit 0); else a substring of the exit-2 reason
	}{
		{"header only", 64, "truncated core: the core is cut short inside its program header table"},
		{"program headers cut", 64 + (phEnd-64)/2, "truncated core: the core is cut short inside its program header table"},
		{"no notes", phEnd, "core records no threads (no NT_PRSTATUS note)"},
		{"first NT_PRSTATUS cut", int64(note.Off) + 12 + 8 + prstatus/2, "core records no threads (no NT_PRSTATUS note)"},
		{"first NT_PRSTATUS whole", int64(note.Off) + 12 + 8 + prstatus, ""},
		{"notes cut", int64(note.Off + note.Filesz/2), ""},
		{"notes whole", int64(note.Off + note.Filesz), ""},
		{"executable's first page cut", int64(exeLoad.Off) + 0xe00, ""},
	}
	dir := t.TempDir()
	for _, cut := range cuts {
		t.Run(strings.ReplaceAll(cut.name, " ", "_"), func(t *testing.T) {
			path := filepath.Join(dir, "core")
			if err := os.WriteFile(path, data[:cut.keep], 0o644); err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("cut at %d of %d bytes (%s)", cut.keep, len(data), cut.name)
			for _, format := range []string{"--json", "--markdown", "--color=never"} {
				r := runCommand(t, what, format, path, c.Binary)
				if cut.want != "" {
					if r.code != exitBadInput || !oneLine(r.stderr) || !strings.Contains(r.stderr, cut.want) {
						t.Errorf("%s %s: exit %d, stderr %q; want exit 2 with %q", what, format, r.code, r.stderr, cut.want)
					}
					if r.stdout != "" {
						t.Errorf("%s %s: printed %q for input that is not a core", what, format, tail(r.stdout))
					}
					continue
				}
				if r.code != exitOK {
					t.Errorf("%s %s: exit %d: %s", what, format, r.code, r.stderr)
					continue
				}
				if format != "--json" {
					continue
				}
				var rep report.Report
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					t.Fatalf("%s: JSON: %v", what, err)
				}
				if why := rep.Unexplained(); why != "" || rep.Signal == nil || len(rep.Threads) == 0 {
					t.Errorf("%s: exit 0 with signal %+v, %d threads, %d findings (%s)", what, rep.Signal, len(rep.Threads), len(rep.Findings), why)
				}
				if rep.Input.Truncated == nil || rep.Input.Truncated.FileBytes != cut.keep {
					t.Errorf("%s: truncation %+v", what, rep.Input.Truncated)
				}
				if rep.Signal != nil && rep.Signal.Source == "NT_PRSTATUS" && rep.Signal.Code != "" {
					t.Errorf("%s: signal code %q from NT_PRSTATUS, which records none", what, rep.Signal.Code)
				}
				if cut.name == "notes whole" {
					// No memory: the Go runtime is there but cannot be read.
					g := runCommand(t, what, "goroutines", path, c.Binary)
					if g.code != exitBadInput || !oneLine(g.stderr) || !strings.Contains(g.stderr, ": the Go runtime cannot be read: goruntime: ") {
						t.Errorf("%s: goroutines: exit %d, %q", what, g.code, g.stderr)
					}
				}
				if cut.name == "executable's first page cut" {
					var exe *report.Image
					for i := range rep.Process.Images {
						if rep.Process.Images[i].Path == rep.Process.Exe {
							exe = &rep.Process.Images[i]
						}
					}
					if want := "the core's copy of its first page is cut short at 3584 bytes, before the build ID; the bytes it holds match"; exe == nil || exe.Status != "unverified" || exe.Note != want {
						t.Errorf("%s: executable image %+v, want unverified: %s", what, exe, want)
					}
				}
			}
		})
	}
}

// The decision itself, on reports of the same real core: the full core's
// report and every report of a cut core that gets one explain something;
// the same report stripped of its signal, threads and findings (what a
// core would give that loses them all) explains nothing and says why,
// with the first note.
func TestUnexplained(t *testing.T) {
	c := fixturetest.MustCrash(t, "go-nil-field", fixtures.Default)
	code, out, stderr := runCLI("--json", c.Core, c.Binary)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if why := rep.Unexplained(); why != "" {
		t.Fatalf("the full core's report explains nothing: %s", why)
	}
	rep.Signal, rep.Threads, rep.Findings = nil, nil, nil
	if why := rep.Unexplained(); why != "" {
		t.Errorf("a report with its crash stack %v but nothing else: %q", rep.Crash != nil, why)
	}
	rep.Crash = nil
	rep.Notes = []string{"core truncated: 10 of 20 bytes missing"}
	if why, want := rep.Unexplained(), "nothing could be explained: no signal, no thread and no finding could be read (core truncated: 10 of 20 bytes missing)"; why != want {
		t.Errorf("Unexplained() = %q, want %q", why, want)
	}
}
