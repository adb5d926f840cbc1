package report

import (
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown renders the report as Markdown, for tickets and chat.
func WriteMarkdown(w io.Writer, r *Report) {
	p := r.Process
	fmt.Fprintf(w, "## coreexplain: %s (pid %d)\n\n", p.Exe, p.PID)
	if in := r.Input; in.LivePID != 0 {
		fmt.Fprintf(w, "**Live:** stopped for %.1f ms to take this snapshot, then detached; it runs on\n\n", in.FrozenMillis)
	}
	if l := coredumpLine(r.Input); l != "" {
		fmt.Fprintf(w, "**Stored:** %s\n\n", l)
	}
	if sig := r.Signal; sig != nil {
		fmt.Fprintf(w, "**Signal:** %s", strings.TrimSpace(sig.Name+" "+sig.Code))
		if sig.Addr != nil {
			fmt.Fprintf(w, " at `%s`", sig.Addr)
		}
		if sig.PC != nil {
			fmt.Fprintf(w, ", pc `%s`", sig.PC)
		}
		if sig.Function != "" {
			fmt.Fprintf(w, " in `%s`", sig.Function)
		}
		fmt.Fprintf(w, " (from %s)\n\n", sig.Source)
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
			fmt.Fprintf(w, "- **%s** (%s confidence): %s\n", f.Class, f.Confidence, f.Summary)
			for _, ev := range f.Evidence {
				line := ev.What
				if ev.Value != "" && !restates(ev.What, ev.Value) {
					line += " = `" + ev.Value + "`"
				}
				if ev.Source != "" {
					line += " _(" + ev.Source + ")_"
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
		fmt.Fprintf(w, ")\n\n```\n")
		for _, f := range c.Frames {
			if f.Plumbing {
				continue
			}
			fmt.Fprintf(w, "%s\n\t%s:%d %s\n", f.Function, f.File, f.Line, f.PC)
		}
		fmt.Fprintf(w, "```\n\n")
	}
	if r.Signature != "" {
		fmt.Fprintf(w, "**Signature:** `%s`\n", r.Signature)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(w, "\n### Notes\n\n- %s\n", strings.Join(r.Notes, "\n- "))
	}
}
