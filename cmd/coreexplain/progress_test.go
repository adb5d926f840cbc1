package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestProgressLine drives the line with a fake clock: silent for a quick
// walk, then redrawn at most every progressRedraw, erased when done.
func TestProgressLine(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(0, 0)
	l := &progressLine{w: &out, now: func() time.Time { return now }, delay: progressDelay}

	l.update("quick", 0, 10)
	now = now.Add(progressDelay / 2)
	l.update("quick", 10, 10)
	if out.Len() != 0 {
		t.Fatalf("a walk shorter than %v drew %q", progressDelay, out.String())
	}

	l.update("unwinding goroutines", 0, 100000)
	now = now.Add(progressDelay)
	l.update("unwinding goroutines", 4096, 100000)
	now = now.Add(progressRedraw / 2)
	l.update("unwinding goroutines", 8192, 100000) // too soon: not drawn
	now = now.Add(progressRedraw)
	l.update("unwinding goroutines", 12288, 100000)
	l.update("unwinding goroutines", 100000, 100000)
	want := "\r\x1b[Kunwinding goroutines: 4096/100000 (4%)" +
		"\r\x1b[Kunwinding goroutines: 12288/100000 (12%)" +
		"\r\x1b[K"
	if out.String() != want {
		t.Errorf("drew %q\nwant %q", out.String(), want)
	}

	out.Reset()
	l.update("heap spans", 0, 0)
	now = now.Add(time.Second)
	l.update("heap spans", 500, 0)
	l.update("reading goroutines", 0, 10) // a new task erases the old line
	if want := "\r\x1b[Kheap spans: 500\r\x1b[K"; out.String() != want {
		t.Errorf("drew %q, want %q", out.String(), want)
	}
}

// TestProgressFlag: a bad --progress is a usage error before any core is
// opened; with stderr on a pseudo-terminal both walks over the 100000
// goroutines of go-many-goroutines are shown on one line, and erased
// before the report; with --progress=never nothing is.
func TestProgressFlag(t *testing.T) {
	c := crash(t, "go-many-goroutines")
	if code, _, stderr := runCLI("--progress=sometimes", c.Core, c.Binary); code != 1 || !strings.Contains(stderr, "--progress must be") {
		t.Errorf("--progress=sometimes: exit %d, stderr %q", code, stderr)
	}
	bin := builtCommand(t)
	onTTY := func(flags ...string) string {
		cmd := exec.Command(bin, append(flags, "--all", "--json", c.Core, c.Binary)...)
		return stderrOnTerminal(t, cmd)
	}
	out := onTTY("--progress=always")
	for _, task := range []string{"reading goroutines", "unwinding goroutines"} {
		if !strings.Contains(out, "\r\x1b[K"+task+": 0/100") {
			t.Errorf("stderr on a terminal does not show %q: %q", task, out)
		}
	}
	if !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("the last walk shown is not erased: %q", out)
	}
	// auto draws only walks slower than progressDelay, and erases them.
	if out := onTTY(); out != "" && !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("--progress=auto leaves %q", out)
	}
	if out := onTTY("--progress=never"); out != "" {
		t.Errorf("--progress=never still writes %q", out)
	}
}
