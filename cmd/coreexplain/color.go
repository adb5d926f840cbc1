package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// useColor decides whether to colour output written to w.
func useColor(mode string, w io.Writer) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return isTerminal(w)
}

// isTerminal reports whether w is a terminal. A character-device check is
// not enough: /dev/null is a character device too, and output sent there
// (cron jobs, `>/dev/null 2>&1`) got colour and progress lines. The
// terminal ioctl (TCGETS) succeeds on terminals only.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// textWidth is the width the text report wraps at: the terminal's columns
// when w is one, else 0, which leaves the renderer's default (80).
func textWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(w) {
		return 0
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil || cols <= 0 {
		return 0
	}
	return cols
}
