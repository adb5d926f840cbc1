package report

import (
	"fmt"
	"io"
	"strings"
)

// TextOptions control the text rendering.
type TextOptions struct {
	Color bool
	All   bool // every bucket and frame, not the first few
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

// textWidth is the width the text report is laid out for.
const textWidth = 80

// WriteText renders the report for a terminal, readable in 80 columns.
func WriteText(w io.Writer, r *Report, o TextOptions) {
	s := style{o.Color}
	tw := &textWriter{w: w}
	tw.header(r, s)
	tw.findings(r, s)
	tw.crash(r, s, o)
	tw.threads(r, s)
	tw.goroutines(r, s, o)
	tw.notes(r, s)
}

type textWriter struct{ w io.Writer }

func (t *textWriter) printf(format string, args ...any) { fmt.Fprintf(t.w, format, args...) }

func (t *textWriter) section(s style, title string) {
	t.printf("\n%s\n", s.bold(title))
}

func (t *textWriter) header(r *Report, s style) {
	p := r.Process
	what := p.Exe
	if len(p.Args) > 0 {
		what = strings.Join(p.Args, " ")
	}
	t.printf("%s %s", s.bold("process"), what)
	t.printf(" (pid %d, %s", p.PID, p.Arch)
	if p.GoVersion != "" {
		t.printf(", %s", p.GoVersion)
	}
	if p.Libc != nil && p.Libc.Flavor != "none" {
		t.printf(", %s %s", p.Libc.Flavor, p.Libc.Linkage)
	}
	t.printf(")\n")
	if in := r.Input; in.LivePID != 0 {
		t.printf("%s %s\n", s.bold("live   "), fmt.Sprintf("stopped for %.1f ms to take this snapshot, then detached; it runs on", in.FrozenMillis))
	}
	if l := coredumpLine(r.Input); l != "" {
		t.printf("%s %s\n", s.bold("stored "), wrapText(l, textWidth-8, "        "))
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
		t.printf("%s %s\n", s.bold("signal "), s.red(line))
		src := "from " + sig.Source
		if sig.Reraised != nil {
			src += fmt.Sprintf("; the core records %s %s: the Go runtime re-raised to dump core", sig.Reraised.Name, sig.Reraised.Code)
		}
		t.printf("        %s\n", s.dim(wrapText(src, textWidth-8, "        ")))
	}
	if c := r.Crash; c != nil {
		line := fmt.Sprintf("thread %d", c.TID)
		if c.M != nil {
			line += fmt.Sprintf(", M%d", *c.M)
		}
		if c.Goroutine != 0 {
			line += fmt.Sprintf(", goroutine %d", c.Goroutine)
		}
		if c.InCgo {
			line += ", in C code called through cgo"
		}
		t.printf("%s %s\n", s.bold("crashed"), line)
	}
	if c := r.Stopped; c != nil {
		line := fmt.Sprintf("thread %d first", c.TID)
		if c.M != nil {
			line += fmt.Sprintf(", M%d", *c.M)
		}
		if c.Goroutine != 0 {
			line += fmt.Sprintf(", goroutine %d", c.Goroutine)
		}
		if c.InCgo {
			line += ", in C code called through cgo"
		}
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
		tag := f.Class
		if f.Cause {
			tag = s.red(tag)
		} else {
			tag = s.yellow(tag)
		}
		t.printf("%d. [%s, %s confidence] %s\n", i+1, tag, f.Confidence, wrapText(f.Summary, textWidth-4, "   "))
		if f.Why != "" {
			t.printf("   %s\n", s.dim(wrapText("confidence: "+f.Why, textWidth-3, "   ")))
		}
		if l := f.Location; l != nil && l.Function != "" {
			loc := l.Function
			if l.File != "" {
				loc += fmt.Sprintf(" at %s:%d", shortPath(l.File), l.Line)
			}
			t.printf("   at %s\n", s.cyan(loc))
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
			t.printf("   - %s\n", wrapText(line, textWidth-5, "     "))
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
		t.printf("  %s\n", s.cyan(name))
		where := f.PC.String()
		if f.File != "" {
			where = fmt.Sprintf("%s:%d  %s", shortPath(f.File), f.Line, s.dim(f.PC.String()))
		}
		t.printf("      %s\n", where)
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
		t.printf("%s %-8d %-4s %-6s %-11s %-14s %s\n", mark, th.TID, m, g, th.State, errno, th.Function)
	}
	for _, th := range r.Threads {
		if th.Errno != nil && th.Errno.Note != "" {
			t.printf("  %s\n", s.dim(wrapText(fmt.Sprintf("* errno of thread %d: %s", th.TID, th.Errno.Note), textWidth-2, "    ")))
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
		t.printf("%s %s\n", head, s.dim(ids))
		depth := 6
		if o.All {
			depth = 1 << 20
		}
		t.frames(b.Frames, s, o.All, depth)
		if b.CreatedBy != nil {
			t.printf("  %s %s\n", s.dim("created by"), b.CreatedBy.Function)
		}
	}
}

func (t *textWriter) notes(r *Report, s style) {
	if len(r.Notes) == 0 {
		return
	}
	t.section(s, "notes")
	for _, n := range r.Notes {
		t.printf("- %s\n", wrapText(n, textWidth-2, "  "))
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
