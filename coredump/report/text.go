package report

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// TextOptions control the text rendering.
type TextOptions struct {
	Color bool
	All   bool // every bucket and frame, not the first few
	// Width is how many columns a line may take: the terminal's width
	// when the report goes to one. 0 means textWidth; less than
	// minTextWidth means minTextWidth, which the threads table needs.
	Width int
}

// style wraps text in ANSI colours when enabled.
type style struct{ on bool }

func (s style) wrap(code, text string) string {
	if !s.on || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s style) bold(t string) string   { return s.wrap("1", t) }
func (s style) red(t string) string    { return s.wrap("1;31", t) }
func (s style) dim(t string) string    { return s.wrap("2", t) }
func (s style) cyan(t string) string   { return s.wrap("36", t) }
func (s style) yellow(t string) string { return s.wrap("33", t) }

// textWidth is the width the text report is laid out for when the
// terminal's is not known.
const textWidth = 80

// minTextWidth is the narrowest layout: the threads table's columns before
// the function take 49.
const minTextWidth = 60

// WriteText renders the report for a terminal, wrapping lines at
// o.Width columns; only a word longer than a line (a long function name
// or path) passes it.
func WriteText(w io.Writer, r *Report, o TextOptions) {
	s := style{o.Color}
	tw := &textWriter{w: w, width: textWidth}
	if o.Width != 0 {
		tw.width = max(o.Width, minTextWidth)
	}
	tw.header(r, s)
	tw.findings(r, s)
	tw.crash(r, s, o)
	tw.threads(r, s)
	tw.goroutines(r, s, o)
	tw.notes(r, s)
}

type textWriter struct {
	w     io.Writer
	width int
}

func (t *textWriter) printf(format string, args ...any) { fmt.Fprintf(t.w, format, args...) }

// line writes first and then text as one line when it fits the width,
// else text's words wrapped after first, continuation lines starting with
// indent; each line of a text of several lines starts a new line.
func (t *textWriter) line(first, text, indent string) {
	t.printf("%s\n", wrapAt(first, text, indent, t.width))
}

func (t *textWriter) section(s style, title string) {
	t.printf("\n")
	t.line("", s.bold(title), "  ")
}

func (t *textWriter) header(r *Report, s style) {
	p := r.Process
	what := p.Exe
	if len(p.Args) > 0 {
		what = strings.Join(p.Args, " ")
	}
	line := fmt.Sprintf("%s (pid %d, %s", what, p.PID, p.Arch)
	if p.GoVersion != "" {
		line += ", " + p.GoVersion
	}
	if p.Libc != nil && p.Libc.Flavor != "none" {
		line += fmt.Sprintf(", %s %s", p.Libc.Flavor, p.Libc.Linkage)
	}
	t.line(s.bold("process")+" ", line+")", "        ")
	if in := r.Input; in.LivePID != 0 {
		t.line(s.bold("live   ")+" ", fmt.Sprintf("stopped for %.1f ms to take this snapshot, then detached; it runs on", in.FrozenMillis), "        ")
	}
	if l := coredumpLine(r.Input); l != "" {
		t.line(s.bold("stored ")+" ", l, "        ")
	}
	if sig := r.Signal; sig != nil {
		line := strings.TrimSpace(sig.Name + " " + sig.Code)
		if sig.Addr != nil {
			line += fmt.Sprintf(" at address %s", sig.Addr)
		}
		if sig.PC != nil {
			line += fmt.Sprintf(", pc %s", sig.PC)
			if sig.Function != "" {
				line += " in " + sig.Function
			}
		}
		if sig.SenderPID != 0 {
			line += fmt.Sprintf(", sent by pid %d", sig.SenderPID)
		}
		t.line(s.bold("signal ")+" ", s.red(line), "        ")
		src := "from " + sig.Source
		if sig.Reraised != nil {
			src += fmt.Sprintf("; the core records %s %s: the Go runtime re-raised to dump core", sig.Reraised.Name, sig.Reraised.Code)
		}
		t.line("        ", s.dim(src), "        ")
	}
	if c := r.Crash; c != nil {
		t.line(s.bold("crashed")+" ", c.threadWords(""), "        ")
	}
	if c := r.Stopped; c != nil {
		line := c.threadWords(" first")
		line += fmt.Sprintf("; %d threads seen: %s", len(r.Threads), r.ThreadStates())
		t.printf("%s %s\n", s.bold("stopped"), wrapText(line, textWidth-8, "        "))
	}
}

func (t *textWriter) findings(r *Report, s style) {
	if len(r.Findings) == 0 {
		return
	}
	t.section(s, "findings")
	for i, f := range r.Findings {
		tag := f.Class.String()
		if f.Cause {
			tag = s.red(tag)
		} else {
			tag = s.yellow(tag)
		}
		t.line(fmt.Sprintf("%d. [%s, %s confidence] ", i+1, tag, f.Confidence), f.Summary, "   ")
		if f.Why != "" {
			t.line("   ", s.dim("confidence: "+f.Why), "   ")
		}
		if l := f.Location; l != nil && l.Function != "" {
			loc := l.Function
			if l.File != "" {
				loc += fmt.Sprintf(" at %s:%d", shortPath(l.File), l.Line)
			}
			t.line("   at ", s.cyan(loc), "      ")
		}
		for _, ev := range f.Evidence {
			line := ev.What
			if ev.Addr != nil && !strings.Contains(line, ev.Addr.String()) {
				line += " @" + ev.Addr.String()
			}
			if ev.Value != "" && !restates(ev.What, ev.Value) {
				line += " = " + ev.Value
			}
			if ev.Source != "" {
				line += s.dim(" (" + ev.Source + ")")
			}
			t.line("   - ", line, "     ")
		}
	}
}

func (t *textWriter) crash(r *Report, s style, o TextOptions) {
	c, title := r.Crash, "crash stack"
	if c == nil && r.Stopped != nil {
		c, title = r.Stopped, fmt.Sprintf("stack of thread %d (stopped first)", r.Stopped.TID)
	}
	if c == nil || len(c.Frames) == 0 {
		return
	}
	t.section(s, title)
	t.frames(c.Frames, s, o.All, 40)
}

func (t *textWriter) frames(fs []Frame, s style, all bool, limit int) {
	shown := 0
	for _, f := range fs {
		if f.Plumbing && !all {
			continue
		}
		if shown == limit && !all {
			t.printf("  %s\n", s.dim("..."))
			break
		}
		shown++
		name := f.Function
		if name == "" {
			name = "?"
		}
		if f.Module != "" && !unnamed(f) {
			name = f.Module + "`" + name
		}
		if f.Inlined {
			name += " (inlined)"
		}
		t.line("  ", s.cyan(name), "    ")
		where := f.PC.String()
		if f.File != "" {
			where = fmt.Sprintf("%s:%d  %s", shortPath(f.File), f.Line, s.dim(f.PC.String()))
		}
		t.line("      ", where, "      ")
	}
}

func (t *textWriter) threads(r *Report, s style) {
	if len(r.Threads) == 0 {
		return
	}
	t.section(s, fmt.Sprintf("threads (%d)", len(r.Threads)))
	t.printf("  %-8s %-4s %-6s %-11s %-14s %s\n", "TID", "M", "G", "STATE", "ERRNO", "FUNCTION")
	for _, th := range r.Threads {
		m, g, errno := "-", "-", "-"
		if th.M != nil {
			m = fmt.Sprint(*th.M)
		}
		if th.Goroutine != 0 {
			g = fmt.Sprint(th.Goroutine)
		}
		if th.Errno != nil {
			errno = fmt.Sprintf("%d %s", th.Errno.Value, th.Errno.Name)
			if th.Errno.Note != "" {
				errno += "*"
			}
		}
		mark := " "
		if th.Crashing {
			mark = s.red("*")
		} else if th.StoppedFirst {
			mark = "*"
		}
		row := fmt.Sprintf("%s %-8d %-4s %-6s %-11s %-14s ", mark, th.TID, m, g, th.State, errno)
		if visibleLen(row)+visibleLen(th.Function) > t.width {
			// The function goes under the row rather than past the width.
			row = strings.TrimRight(row, " ") + "\n    "
		}
		t.printf("%s\n", strings.TrimRight(row+th.Function, " "))
	}
	for _, th := range r.Threads {
		if th.Errno != nil && th.Errno.Note != "" {
			t.line("  ", s.dim(fmt.Sprintf("* errno of thread %d: %s", th.TID, th.Errno.Note)), "    ")
		}
	}
}

func (t *textWriter) goroutines(r *Report, s style, o TextOptions) {
	g := r.Goroutines
	if g == nil {
		return
	}
	var states []string
	for st, n := range g.ByState {
		states = append(states, fmt.Sprintf("%d %s", n, st))
	}
	sortStrings(states)
	t.section(s, fmt.Sprintf("goroutines (%d: %s)", g.Total, strings.Join(states, ", ")))
	limit := 10
	for i, b := range g.Buckets {
		if i == limit && !o.All {
			t.printf("  %s\n", s.dim(fmt.Sprintf("... %d more groups (--all shows them)", len(g.Buckets)-limit)))
			break
		}
		head := fmt.Sprintf("%d× [%s", b.Count, b.State)
		if b.WaitReason != "" {
			head += ": " + b.WaitReason
		}
		if b.WaitMinutes > 0 {
			head += fmt.Sprintf(", %d minutes", b.WaitMinutes)
		}
		head += "]"
		ids := idList(b.IDs, 8)
		if b.Crashing {
			head = s.red(head + " crashing")
		} else if b.StoppedFirst {
			ids += " (on the thread stopped first)"
		}
		t.line(head+" ", s.dim(ids), "  ")
		depth := 6
		if o.All {
			depth = 1 << 20
		}
		t.frames(b.Frames, s, o.All, depth)
		if b.CreatedBy != nil {
			t.line("  "+s.dim("created by")+" ", b.CreatedBy.Function, "    ")
		}
	}
}

func (t *textWriter) notes(r *Report, s style) {
	if len(r.Notes) == 0 {
		return
	}
	t.section(s, "notes")
	for _, n := range r.Notes {
		t.line("- ", n, "  ")
	}
}

func idList(ids []int64, max int) string {
	var b strings.Builder
	b.WriteString("goroutine")
	if len(ids) > 1 {
		b.WriteString("s")
	}
	for i, id := range ids {
		if i == max {
			fmt.Fprintf(&b, " ... (+%d)", len(ids)-max)
			break
		}
		fmt.Fprintf(&b, " %d", id)
	}
	return b.String()
}

// shortPath keeps the last two elements of a source path.
func shortPath(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) > 2 {
		return strings.Join(parts[len(parts)-2:], "/")
	}
	return p
}

// wrapAt is first followed by text, as is when it fits in width columns,
// else with text's words wrapped so no line passes width but for a word
// longer than a line. Continuation lines start with indent; each line of
// a text of several lines starts one. Colour escapes take no columns.
func wrapAt(first, text, indent string, width int) string {
	out := []byte(first)
	col := visibleLen(first)
	newline := func() {
		out = append(bytes.TrimRight(out, " "), '\n')
		out = append(out, indent...)
		col = visibleLen(indent)
	}
	for i, l := range strings.Split(text, "\n") {
		if i > 0 {
			newline()
		}
		if col+visibleLen(l) <= width {
			out = append(out, l...)
			continue
		}
		lineStart := true // nothing but the prefix or indent on the line yet
		for _, word := range strings.Fields(l) {
			n := visibleLen(word)
			switch {
			case lineStart && i == 0 && !blank(first) && col+n > width:
				// No room after a label ("process", "1. [class, ...]"):
				// the word goes to the next line.
				newline()
			case lineStart:
			case col+1+n > width:
				newline()
			default:
				out = append(out, ' ')
				col++
			}
			out = append(out, word...)
			col += n
			lineStart = false
		}
	}
	return string(bytes.TrimRight(out, " "))
}

// blank reports whether s is only spaces and colour escapes.
func blank(s string) bool {
	return visibleLen(strings.TrimSpace(s)) == 0
}

// visibleLen is how many columns s takes on a terminal: its runes, less
// the colour escapes (ESC [ ... m).
func visibleLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			for i < len(s) && s[i] != 'm' {
				i++
			}
			continue
		}
		if utf8.RuneStart(s[i]) {
			n++
		}
	}
	return n
}

// wrapText wraps s at width, indenting continuation lines with indent.
func wrapText(s string, width int, indent string) string {
	if len(s) <= width || width < 20 {
		return s
	}
	var out strings.Builder
	line := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if line+1+len(word) > width {
				out.WriteString("\n" + indent)
				line = 0
			} else {
				out.WriteByte(' ')
				line++
			}
		}
		out.WriteString(word)
		line += len(word)
	}
	return out.String()
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// restates reports whether an evidence's description already says its
// value, as a whole word: the renderings then leave " = value" out.
func restates(what, value string) bool {
	isWord := func(b byte) bool {
		return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
	}
	for i := 0; i+len(value) <= len(what); {
		j := strings.Index(what[i:], value)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(value)
		if (start == 0 || !isWord(what[start-1]) || !isWord(value[0])) &&
			(end == len(what) || !isWord(what[end]) || !isWord(value[len(value)-1])) {
			return true
		}
		i = start + 1
	}
	return false
}

// threadWords names the thread of c, its M and goroutine, and whether it
// was in C: "thread 14387, M0, goroutine 1"; what is put after the thread
// id says what it is to the reader (" first" for the thread a live
// snapshot stopped first).
func (c *Crash) threadWords(what string) string {
	line := fmt.Sprintf("thread %d%s", c.TID, what)
	if c.M != nil {
		line += fmt.Sprintf(", M%d", *c.M)
	}
	if c.Goroutine != 0 {
		line += fmt.Sprintf(", goroutine %d", c.Goroutine)
	}
	if c.InCgo {
		line += ", in C code called through cgo"
	}
	return line
}
