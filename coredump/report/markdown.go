package report

import (
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown renders the report as Markdown, for tickets and chat.
// Everything that comes from the target (function names such as
// main.(*Server).maxIdle, paths, messages) is escaped, so a renderer shows
// it as it is: mdText for running text, mdCode for code spans, mdFence for
// the stack's code block.
func WriteMarkdown(w io.Writer, r *Report) {
	p := r.Process
	fmt.Fprintf(w, "## coreexplain: %s (pid %d)\n\n", mdText(p.Exe), p.PID)
	if in := r.Input; in.LivePID != 0 {
		fmt.Fprintf(w, "**Live:** stopped for %.1f ms to take this snapshot, then detached; it runs on\n\n", in.FrozenMillis)
	}
	if l := coredumpLine(r.Input); l != "" {
		fmt.Fprintf(w, "**Stored:** %s\n\n", mdText(l))
	}
	if sig := r.Signal; sig != nil {
		fmt.Fprintf(w, "**Signal:** %s", mdText(strings.TrimSpace(sig.Name+" "+sig.Code)))
		if sig.Addr != nil {
			fmt.Fprintf(w, " at %s", mdCode(sig.Addr.String()))
		}
		if sig.PC != nil {
			fmt.Fprintf(w, ", pc %s", mdCode(sig.PC.String()))
		}
		if sig.Function != "" {
			fmt.Fprintf(w, " in %s", mdCode(sig.Function))
		}
		fmt.Fprintf(w, " (from %s)\n\n", mdText(sig.Source))
	}
	if c := r.Stopped; c != nil {
		fmt.Fprintf(w, "**Stopped first:** thread %d", c.TID)
		if c.M != nil {
			fmt.Fprintf(w, ", M%d", *c.M)
		}
		if c.Goroutine != 0 {
			fmt.Fprintf(w, ", goroutine %d", c.Goroutine)
		}
		fmt.Fprintf(w, "; %d threads seen: %s\n\n", len(r.Threads), r.ThreadStates())
	}
	if len(r.Findings) > 0 {
		fmt.Fprintf(w, "### Findings\n\n")
		for _, f := range r.Findings {
			fmt.Fprintf(w, "- **%s** (%s confidence): %s\n", mdText(f.Class.String()), f.Confidence, mdLines(f.Summary, "  "))
			for _, ev := range f.Evidence {
				line := mdLines(ev.What, "    ")
				if ev.Value != "" && !restates(ev.What, ev.Value) {
					line += " = " + mdCode(ev.Value)
				}
				if ev.Source != "" {
					line += " _(" + mdText(ev.Source) + ")_"
				}
				fmt.Fprintf(w, "  - %s\n", line)
			}
		}
		fmt.Fprintln(w)
	}
	title := "Crash stack"
	c := r.Crash
	if c == nil && r.Stopped != nil {
		c, title = r.Stopped, "Stack of the thread stopped first"
	}
	if c != nil && len(c.Frames) > 0 {
		fmt.Fprintf(w, "### %s (thread %d", title, c.TID)
		if c.Goroutine != 0 {
			fmt.Fprintf(w, ", goroutine %d", c.Goroutine)
		}
		fmt.Fprintf(w, ")\n\n")
		var b strings.Builder
		for _, f := range c.Frames {
			if f.Plumbing {
				continue
			}
			name := f.Function
			if name == "" {
				name = "?"
			}
			where := f.PC.String()
			if f.File != "" {
				where = fmt.Sprintf("%s:%d %s", f.File, f.Line, f.PC)
			}
			fmt.Fprintf(&b, "%s\n\t%s\n", oneLine(name), oneLine(where))
		}
		fence := mdFence(b.String())
		fmt.Fprintf(w, "%s\n%s%s\n\n", fence, b.String(), fence)
	}
	if r.Signature != "" {
		fmt.Fprintf(w, "**Signature:** %s\n", mdCode(r.Signature))
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(w, "\n### Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "- %s\n", mdLines(n, "  "))
		}
	}
}

// oneLine joins a text's lines, for the places that hold one line only (a
// heading, a code span).
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), " ")
}

// mdLines escapes a text of several lines (the runtime's last words, an
// error chain) as lines of a list item whose content starts at column
// len(indent): each ends in a hard line break (a backslash, CommonMark
// section 6.7) and the next is indented to stay in the item. Leading and
// trailing spaces of a line are dropped: Markdown would not show them.
func mdLines(s, indent string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i, l := range lines {
		lines[i] = mdText(l)
	}
	return strings.Join(lines, "\\\n"+indent)
}

// mdText escapes a line of text for Markdown with backslashes, which
// CommonMark allows before any ASCII punctuation (spec section 2.4,
// "Backslash escapes"): emphasis (* _), code spans (`), links and images
// ([ ] !), raw HTML and autolinks (< >), entity references (&), GFM
// tables (|) and strikethrough (~), headings (#) and block quotes (>). A
// leading - + = or "1." would start a list or a heading underline, so
// those are escaped at the start too.
func mdText(s string) string {
	s = strings.TrimSpace(oneLine(s))
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\', '`', '*', '_', '[', ']', '!', '<', '>', '&', '|', '~', '#':
			b.WriteByte('\\')
		case '-', '+', '=':
			if i == 0 {
				b.WriteByte('\\')
			}
		case '.', ')':
			if i > 0 && isDigits(s[:i]) {
				b.WriteByte('\\')
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// mdCode makes s a code span, whose content is not interpreted: it is
// delimited by a backtick run longer than any inside it, with a space
// inside each delimiter when s starts or ends with a backtick (CommonMark
// section 6.1, "Code spans"; the renderer strips one such space).
func mdCode(s string) string {
	s = oneLine(s)
	ticks := strings.Repeat("`", longestRun(s, '`')+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || strings.HasPrefix(s, " ") && strings.HasSuffix(s, " ") && strings.TrimSpace(s) != "" {
		return ticks + " " + s + " " + ticks
	}
	return ticks + s + ticks
}

// mdFence is a code fence for a block holding s: at least three backticks
// and more than any run in s, which would otherwise close it (CommonMark
// section 4.5, "Fenced code blocks").
func mdFence(s string) string {
	return strings.Repeat("`", max(3, longestRun(s, '`')+1))
}

func longestRun(s string, c byte) int {
	n, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			run++
			n = max(n, run)
		} else {
			run = 0
		}
	}
	return n
}
