package main

// Hostile inputs through the built command, as a user meets them: cores cut
// short at every few percent, cores with flipped bytes, wrong binaries and
// files that are not cores. The command runs as a subprocess with a
// timeout; it must end in a report (exit 0) or a one-line reason (exit 2),
// never a crash, a Go panic trace or a hang.

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
	"github.com/klauspost/compress/zstd"
)

// runTimeout bounds one run of the command on a hostile core.
const runTimeout = 90 * time.Second

type result struct {
	code           int
	stdout, stderr string
}

// runCommand runs the built command and fails the test on a crash or a
// hang: an exit code other than 0 and 2, a panic trace, a timeout.
func runCommand(t *testing.T, what string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, builtCommand(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
	if ctx.Err() != nil {
		t.Fatalf("%s: coreexplain %q hung (killed after %s)", what, args, runTimeout)
	}
	if err != nil && r.code != exitBadInput {
		t.Fatalf("%s: coreexplain %q: %v (exit %d)\nstderr:\n%s", what, args, err, r.code, tail(r.stderr))
	}
	for _, bad := range []string{"panic:", "goroutine 1 [", "fatal error:", "SIGSEGV", "runtime error:"} {
		if strings.Contains(r.stderr, bad) {
			t.Fatalf("%s: coreexplain %q: a crash escaped (%q):\n%s", what, args, bad, tail(r.stderr))
		}
	}
	return r
}

func tail(s string) string {
	if len(s) > 3000 {
		return "..." + s[len(s)-3000:]
	}
	return s
}

// oneLine reports whether stderr is a single "coreexplain: ..." line.
func oneLine(stderr string) bool {
	s := strings.TrimRight(stderr, "\n")
	return strings.HasPrefix(s, "coreexplain: ") && !strings.Contains(s, "\n")
}

func fixtureCrash(t *testing.T, name string, v fixtures.Variant) *fixtures.Crash {
	t.Helper()
	return fixturetest.MustCrash(t, name, v)
}

// truncationCuts are the percentages a core is cut at.
var truncationCuts = func() []int {
	cuts := []int{1}
	for p := 5; p < 100; p += 5 {
		cuts = append(cuts, p)
	}
	return append(cuts, 99)
}()

// Every cut of a cgo and a pure Go core ends in a report that says how
// much is missing, or in exit 2 with a one-line reason.
func TestTruncatedCoresCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the command on 42 cores")
	}
	for _, name := range []string{"cgo-null-write", "go-nil-field"} {
		c := fixtureCrash(t, name, fixtures.Default)
		data, err := os.ReadFile(c.Core)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		reports := 0
		for _, pct := range truncationCuts {
			keep := int64(len(data)) * int64(pct) / 100
			cut := filepath.Join(dir, fmt.Sprintf("core.%d", pct))
			if err := os.WriteFile(cut, data[:keep], 0o644); err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("%s cut at %d%% (%d of %d bytes)", name, pct, keep, len(data))
			r := runCommand(t, what, "--json", cut, c.Binary)
			os.Remove(cut)
			if r.code == exitBadInput {
				if !oneLine(r.stderr) {
					t.Errorf("%s: exit 2 without a one-line reason: %q", what, r.stderr)
				}
				continue
			}
			reports++
			var rep report.Report
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("%s: JSON: %v", what, err)
			}
			tr := rep.Input.Truncated
			if tr == nil || tr.FileBytes != keep || tr.ExpectedBytes != int64(len(data)) || tr.MissingBytes != int64(len(data))-keep ||
				len(tr.Mappings) == 0 || len(tr.Affected) == 0 {
				t.Errorf("%s: truncation in the report: %+v", what, tr)
				continue
			}
			if len(rep.Notes) == 0 || !strings.HasPrefix(rep.Notes[0], fmt.Sprintf("core truncated: %d of %d bytes missing", len(data)-int(keep), len(data))) {
				t.Errorf("%s: first note %q", what, rep.Notes)
			}
			if len(rep.Threads) == 0 && !tr.NotesMissing {
				t.Errorf("%s: no threads though the notes are complete", what)
			}
		}
		// The notes sit in the first few kilobytes: all but the tiniest
		// cuts must still be explained.
		if reports < len(truncationCuts)-2 {
			t.Errorf("%s: only %d of %d cuts gave a report", name, reports, len(truncationCuts))
		}
	}
}

// Hundreds of cores with flipped bytes — most in the headers and notes,
// where a flip changes the structure, the rest anywhere — end in a report
// or a clear exit 2.
func TestByteFlippedCoresCLI(t *testing.T) {
	n := 240
	if testing.Short() {
		n = 24
	}
	for i, name := range []string{"cgo-null-write", "go-nil-field", "c-segv"} {
		c := fixtureCrash(t, name, fixtures.Default)
		data, err := os.ReadFile(c.Core)
		if err != nil {
			t.Fatal(err)
		}
		ef, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		structEnd := uint64(64 + 56*len(ef.Progs))
		for _, ph := range ef.Progs {
			if ph.Type == elf.PT_NOTE {
				structEnd = max(structEnd, ph.Off+ph.Filesz)
			}
		}
		ef.Close()
		dir := t.TempDir()
		path := filepath.Join(dir, "core")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(i), 9))
		counts := map[int]int{}
		for k := range n / 3 {
			var offs []int64
			for range 1 + rng.IntN(8) {
				off := int64(rng.Uint64N(structEnd))
				if rng.IntN(4) == 0 {
					off = int64(rng.Uint64N(uint64(len(data))))
				}
				offs = append(offs, off)
				f.WriteAt([]byte{data[off] ^ byte(1+rng.IntN(255))}, off)
			}
			what := fmt.Sprintf("%s #%d with bytes flipped at %v", name, k, offs)
			r := runCommand(t, what, path, c.Binary)
			counts[r.code]++
			if r.code == exitBadInput && !oneLine(r.stderr) && !strings.Contains(r.stderr, "--force") {
				t.Errorf("%s: exit 2 without a one-line reason: %q", what, r.stderr)
			}
			if r.code == exitOK && !strings.Contains(r.stdout, "threads (") {
				t.Errorf("%s: report without threads:\n%s", what, r.stdout)
			}
			for _, off := range offs {
				f.WriteAt(data[off:off+1], off)
			}
		}
		f.Close()
		t.Logf("%s: %d flipped cores: %d reports, %d refused", name, n/3, counts[exitOK], counts[exitBadInput])
		if counts[exitOK] == 0 {
			t.Errorf("%s: no flipped core got a report", name)
		}
	}
}

// Inputs that cannot be analysed are refused with exit 2 and one line that
// says why.
func TestUnusableInputsCLI(t *testing.T) {
	c := fixtureCrash(t, "go-nil-field", fixtures.Default)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	core, err := os.ReadFile(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	arm := append([]byte(nil), core[:4096]...)
	arm[18], arm[19] = byte(elf.EM_RISCV), 0
	class32 := append([]byte(nil), core[:4096]...)
	class32[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	bin, err := os.ReadFile(c.Binary)
	if err != nil {
		t.Fatal(err)
	}
	armBin := append([]byte(nil), bin...)
	armBin[18], armBin[19] = byte(elf.EM_AARCH64), 0
	noNotes := append([]byte(nil), core...)
	for i := 0; i < int(le16(noNotes[56:])); i++ {
		e := noNotes[64+56*i:]
		if e[0] == byte(elf.PT_NOTE) {
			e[0] = byte(elf.PT_NULL)
		}
	}
	for _, tc := range []struct {
		what string
		args []string
		want string
	}{
		{"an empty file", []string{write("empty", nil), c.Binary}, "the file is empty"},
		{"a directory", []string{dir, c.Binary}, "not a regular file"},
		{"a text file", []string{write("text", []byte("hello, world\n")), c.Binary}, "not an ELF core file"},
		{"the binary as the core", []string{c.Binary, c.Binary}, "not a core dump"},
		{"a core of another architecture", []string{write("riscv", arm), c.Binary}, "only x86-64 and aarch64"},
		{"a 32-bit core", []string{write("class32", class32), c.Binary}, "64-bit"},
		{"a core without notes", []string{write("nonotes", noNotes), c.Binary}, "no note segment"},
		{"a missing core", []string{filepath.Join(dir, "nope"), c.Binary}, "no such file"},
		{"a text file as the binary", []string{c.Core, write("notelf", []byte("#!/bin/sh\n"))}, "not a 64-bit ELF file"},
		{"a missing binary", []string{c.Core, filepath.Join(dir, "nobin")}, "no such file"},
		{"a binary of another architecture", []string{c.Core, write("armbin", armBin)}, "the executable is for EM_AARCH64, the core for EM_X86_64"},
		{"the core as the binary", []string{c.Core, c.Core}, "core file, not the executable"},
		{"a zstd file that is not a core", []string{write("junk.zst", []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}), c.Binary}, "zstd"},
	} {
		r := runCommand(t, tc.what, tc.args...)
		if r.code != exitBadInput || !oneLine(r.stderr) || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and one line with %q", tc.what, r.code, r.stderr, tc.want)
		}
	}
}

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }

// The wrong build of the binary is refused with both build IDs and the
// override; --force analyses it and says so.
func TestWrongBinaryCLI(t *testing.T) {
	a := fixtureCrash(t, "go-nil-map", fixtures.Default)
	b := fixtureCrash(t, "go-nil-map", fixtures.Variant{PIE: true})
	r := runCommand(t, "wrong build", a.Core, b.Binary)
	coreID, exeID := goBuildID(t, a.Binary), goBuildID(t, b.Binary)
	if r.code != exitBadInput || !strings.Contains(r.stderr, "go:"+coreID) || !strings.Contains(r.stderr, "go:"+exeID) || !strings.Contains(r.stderr, "--force") {
		t.Errorf("wrong build: exit %d, stderr %q; want exit 2 naming go:%s, go:%s and --force", r.code, r.stderr, coreID, exeID)
	}
	r = runCommand(t, "wrong build, forced", "--force", "--json", a.Core, b.Binary)
	var rep report.Report
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rep) != nil {
		t.Fatalf("--force: exit %d\n%s", r.code, r.stderr)
	}
	forced := false
	for _, n := range rep.Notes {
		forced = forced || (strings.Contains(n, "does not match the core") && strings.Contains(n, "--force"))
	}
	if !forced {
		t.Errorf("--force report does not say the binary does not match: %q", rep.Notes)
	}
}

func goBuildID(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command("go", "tool", "buildid", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// A stripped build (-ldflags=-s -w) of a fixture gets the same crash story
// as the full build — the signal, the first finding's class, the crashing
// function — and the report says what is unavailable without DWARF.
func TestStrippedReportsCLI(t *testing.T) {
	type story struct {
		signal, code, class, function string
		goroutines                    int
	}
	storyOf := func(t *testing.T, c *fixtures.Crash) (story, report.Report) {
		r := runCommand(t, c.Fixture.Name+" "+c.Variant.String(), "--json", c.Core, c.Binary)
		var rep report.Report
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rep) != nil {
			t.Fatalf("%s %s: exit %d\n%s", c.Fixture.Name, c.Variant, r.code, r.stderr)
		}
		var s story
		if sig := rep.Signal; sig != nil {
			s.signal, s.code = sig.Name, sig.Code
		}
		if len(rep.Findings) > 0 {
			s.class = rep.Findings[0].Class.String()
			if l := rep.Findings[0].Location; l != nil {
				s.function = l.Function
			}
		}
		if rep.Goroutines != nil {
			s.goroutines = rep.Goroutines.Total
		}
		return s, rep
	}
	told := 0
	for _, name := range []string{"go-nil-field", "go-index-range", "go-panic-wrapped", "cgo-null-write", "go-concurrent-map"} {
		full, _ := storyOf(t, fixtureCrash(t, name, fixtures.Default))
		stripped, rep := storyOf(t, fixtureCrash(t, name, fixtures.Variant{Strip: true}))
		if !strings.Contains(full.function, ".") {
			// A C function: -s removes C symbols too, so the stripped
			// build can only name it by module and offset.
			full.function, stripped.function = "", ""
		}
		if stripped != full {
			t.Errorf("%s: stripped build's story %+v, full build's %+v", name, stripped, full)
		}
		if full.class != "" {
			told++
		}
		dwarfNote := false
		for _, n := range rep.Notes {
			dwarfNote = dwarfNote || strings.Contains(n, "no DWARF")
		}
		if !dwarfNote {
			t.Errorf("%s: the stripped report does not say DWARF is missing: %q", name, rep.Notes)
		}
	}
	if told < 2 {
		t.Errorf("only %d fixtures got a finding at all", told)
	}
}

// `coreexplain core.zst BINARY` prints what `coreexplain core BINARY`
// prints, plus the line saying how the core was stored.
func TestCompressedCoreCLI(t *testing.T) {
	c := fixtureCrash(t, "go-nil-field", fixtures.Default)
	plain := runCommand(t, "plain core", c.Core, c.Binary)
	z := filepath.Join(t.TempDir(), "core.zst")
	data, err := os.ReadFile(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil)
	if err := os.WriteFile(z, enc.EncodeAll(data, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCommand(t, "zstd core", z, c.Binary)
	var kept []string
	stored := false
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "stored ") {
			stored = strings.Contains(l, "zstd-compressed")
			continue
		}
		kept = append(kept, l)
	}
	if r.code != exitOK || !stored || strings.Join(kept, "\n") != plain.stdout {
		t.Errorf("zstd core: exit %d, stored line %v; output differs from the plain core's:\n%s\n--- plain:\n%s", r.code, stored, r.stdout, plain.stdout)
	}
}
