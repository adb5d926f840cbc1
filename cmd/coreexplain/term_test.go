//go:build linux

package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestDevNullIsNotATerminal: /dev/null is a character device, which the
// old check took for a terminal; it gets no colour and the default width.
// A pipe neither. A pseudo-terminal is one, with its width.
func TestDevNullIsNotATerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	st, err := null.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("%s is not a character device (%v): the test shows nothing", os.DevNull, st.Mode())
	}
	if isTerminal(null) || useColor("auto", null) || textWidth(null) != 0 {
		t.Errorf("%s: terminal %v, colour %v, width %d", os.DevNull, isTerminal(null), useColor("auto", null), textWidth(null))
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) || textWidth(w) != 0 {
		t.Errorf("a pipe: terminal %v, width %d", isTerminal(w), textWidth(w))
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
	_, tty := openPTY(t, 132)
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	if !isTerminal(tty) || !useColor("auto", tty) || textWidth(tty) != 132 {
		t.Errorf("a 132-column terminal: terminal %v, colour %v, width %d", isTerminal(tty), useColor("auto", tty), textWidth(tty))
	}
}

// TestTextFollowsTerminalWidth runs coreexplain with its stdout on
// terminals of 60 and 120 columns: the report wraps at the terminal's
// width. Its output to a pipe or a file is laid out for 80 columns, as
// before.
func TestTextFollowsTerminalWidth(t *testing.T) {
	c := crash(t, "cgo-abort-assert")
	longest := map[int]int{}
	for _, cols := range []int{60, 120} {
		ctl, tty := openPTY(t, uint16(cols))
		got := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(ctl) // ends with EIO once the terminal side is closed
			got <- b
		}()
		var stderr bytes.Buffer
		code := run([]string{"--color", "never", c.Core, c.Binary}, tty, &stderr)
		tty.Close()
		out := strings.ReplaceAll(string(<-got), "\r\n", "\n") // the terminal's ONLCR
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if !strings.Contains(out, "c-abort, high confidence") {
			t.Fatalf("%d columns: no c-abort finding in\n%s", cols, out)
		}
		for _, l := range strings.Split(out, "\n") {
			n := utf8.RuneCountInString(l)
			if n > cols && len(strings.Fields(l)) > 1 {
				t.Errorf("%d columns: a line of %d: %q", cols, n, l)
			}
			if len(strings.Fields(l)) > 1 {
				longest[cols] = max(longest[cols], n)
			}
		}
	}
	// A line of several words longer than 80 shows the 120 columns were
	// used; at 60 none passes 60 (checked above).
	if longest[120] <= 80 || longest[60] > 60 {
		t.Errorf("longest lines of several words: %d at 60 columns, %d at 120", longest[60], longest[120])
	}
	code, out, _ := runCLI("--color", "never", c.Core, c.Binary)
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > 80 && len(strings.Fields(l)) > 1 {
			t.Errorf("not a terminal: a line of %d: %q", n, l)
		}
	}
}
