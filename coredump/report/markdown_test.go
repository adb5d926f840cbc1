package report

import (
	"bytes"
	"fmt"
	"html"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

// gfm renders Markdown the way GitHub does (CommonMark plus tables,
// strikethrough, autolinks and task lists).
var gfm = goldmark.New(goldmark.WithExtensions(extension.GFM))

var (
	htmlTag = regexp.MustCompile(`<[^>]*>`)
	// tagsWeWrite are the only elements the report's Markdown may render
	// to: anything else (a link, an image, raw HTML, a table, struck-out
	// text, a heading level of its own) came from text that was not
	// escaped.
	tagsWeWrite = map[string]bool{"h2": true, "h3": true, "p": true, "ul": true, "li": true,
		"strong": true, "em": true, "code": true, "pre": true}
	emphasis = regexp.MustCompile(`<(strong|em)>(.*?)</(?:strong|em)>`)
)

// renderedText renders md to HTML and returns its text, line by line,
// without tags and blank lines, and the elements it used.
func renderedText(t *testing.T, md []byte) (lines []string, tags map[string]int, html_ string) {
	t.Helper()
	var out bytes.Buffer
	if err := gfm.Convert(md, &out); err != nil {
		t.Fatal(err)
	}
	tags = map[string]int{}
	for _, m := range htmlTag.FindAllString(out.String(), -1) {
		name := strings.Fields(strings.Trim(m, "</>"))
		if len(name) > 0 && !strings.HasPrefix(m, "</") {
			tags[name[0]]++
		}
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if l = html.UnescapeString(htmlTag.ReplaceAllString(l, "")); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines, tags, out.String()
}

// wantText is the text a reader must see in the rendered Markdown of r:
// every text of the target exactly as the report has it.
func wantText(r *Report) (lines []string, strong, em []string) {
	p := r.Process
	lines = append(lines, fmt.Sprintf("coreexplain: %s (pid %d)", p.Exe, p.PID))
	if sig := r.Signal; sig != nil {
		l := fmt.Sprintf("Signal: %s %s", sig.Name, sig.Code)
		if sig.Addr != nil {
			l += " at " + sig.Addr.String()
		}
		if sig.PC != nil {
			l += ", pc " + sig.PC.String()
		}
		if sig.Function != "" {
			l += " in " + sig.Function
		}
		lines = append(lines, l+" (from "+sig.Source+")")
		strong = append(strong, "Signal:")
	}
	if len(r.Findings) > 0 {
		lines = append(lines, "Findings")
	}
	for _, f := range r.Findings {
		lines = append(lines, textLines(fmt.Sprintf("%s (%s confidence): %s", f.Class, f.Confidence, f.Summary))...)
		strong = append(strong, f.Class.String())
		for _, ev := range f.Evidence {
			l := ev.What
			if ev.Value != "" && !restates(ev.What, ev.Value) {
				l += " = " + oneLine(ev.Value) // a code span holds one line
			}
			if ev.Source != "" {
				l += " (" + ev.Source + ")"
				em = append(em, "("+ev.Source+")")
			}
			lines = append(lines, textLines(l)...)
		}
	}
	if c := r.Crash; c != nil && len(c.Frames) > 0 {
		l := fmt.Sprintf("Crash stack (thread %d", c.TID)
		if c.Goroutine != 0 {
			l += fmt.Sprintf(", goroutine %d", c.Goroutine)
		}
		lines = append(lines, l+")")
		for _, f := range c.Frames {
			if f.Plumbing {
				continue
			}
			name, where := f.Function, f.PC.String()
			if name == "" {
				name = "?"
			}
			if f.File != "" {
				where = fmt.Sprintf("%s:%d %s", f.File, f.Line, f.PC)
			}
			lines = append(lines, name, "\t"+where)
		}
	}
	if r.Signature != "" {
		lines = append(lines, "Signature: "+r.Signature)
		strong = append(strong, "Signature:")
	}
	if len(r.Notes) > 0 {
		lines = append(lines, "Notes")
		for _, n := range r.Notes {
			lines = append(lines, textLines(n)...)
		}
	}
	return lines, strong, em
}

// textLines are the lines of s as a renderer shows them, without the
// spaces around each.
func textLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestMarkdownShowsTargetTextVerbatim renders the Markdown of every crashed
// fixture with a CommonMark (GFM) renderer and checks that a reader sees
// each function name, path, summary, evidence and note exactly as the
// report has it: no `*` or `_` of main.(*Server).maxIdle or __abort_msg
// turned into emphasis, no backtick of an assertion message into code, no
// [0] or <...> into a link or HTML, and only the elements the renderer
// writes.
func TestMarkdownShowsTargetTextVerbatim(t *testing.T) {
	special := 0 // texts with a character Markdown would interpret
	for _, name := range crashedFixtures(t) {
		t.Run(name, func(t *testing.T) {
			r, _, _ := buildFixture(t, name, Options{})
			var md bytes.Buffer
			WriteMarkdown(&md, r)
			have, tags, rendered := renderedText(t, md.Bytes())
			want, strong, em := wantText(r)
			if !slices.Equal(have, want) {
				t.Errorf("rendered text differs\nhave:\n%s\nwant:\n%s\nmarkdown:\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"), md.String())
			}
			for tag := range tags {
				if !tagsWeWrite[tag] {
					t.Errorf("rendered to <%s>: %s", tag, rendered)
				}
			}
			var haveStrong, haveEm []string
			for _, m := range emphasis.FindAllStringSubmatch(rendered, -1) {
				text := html.UnescapeString(htmlTag.ReplaceAllString(m[2], ""))
				if m[1] == "strong" {
					haveStrong = append(haveStrong, text)
				} else {
					haveEm = append(haveEm, text)
				}
			}
			if !slices.Equal(haveStrong, strong) || !slices.Equal(haveEm, em) {
				t.Errorf("emphasis: strong %q, em %q; want strong %q, em %q", haveStrong, haveEm, strong, em)
			}
			for _, l := range want {
				if strings.ContainsAny(l, "*_`[]<>&|") {
					special++
				}
			}
		})
	}
	if special == 0 {
		t.Error("no fixture's report has a text Markdown would interpret: the test shows nothing")
	}
}

// TestMarkdownEscapes pins how go-nil-field's texts are written.
func TestMarkdownEscapes(t *testing.T) {
	r, _, _ := buildFixture(t, "go-nil-field", Options{})
	var md bytes.Buffer
	WriteMarkdown(&md, r)
	for _, want := range []string{
		"**Signal:** SIGSEGV SEGV\\_MAPERR at `0x80`, pc `0x49e143` in `main.(*Server).maxIdle` (from g.sig)\n",
		"- **nil-deref** (high confidence): Nil pointer dereference in main.(\\*Server).maxIdle: s.cfg is nil (\\*main.Config); reading its field Limits.MaxIdle at offset 0x80\n",
		"**Signature:** `nil-deref:\"*main.Config.Limits.MaxIdle\" | main.(*Server).maxIdle | main.main`\n",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("no line %q in\n%s", want, md.String())
		}
	}
	// Texts that would open blocks or spans of their own, as a target's
	// message could hold them.
	for in, want := range map[string]string{
		"- not a list":         `\- not a list`,
		"1. not a list":        `1\. not a list`,
		"# not a heading":      `\# not a heading`,
		"a <b> [c](d) ~e~ f|g": `a \<b\> \[c\](d) \~e\~ f\|g`,
		"two\nlines":           "two lines",
		"  indented":           "indented",
	} {
		if have := mdText(in); have != want {
			t.Errorf("mdText(%q) = %q, want %q", in, have, want)
		}
	}
	for in, want := range map[string]string{
		"plain":     "`plain`",
		"a`b":       "``a`b``",
		"`quoted`":  "`` `quoted` ``",
		"x ``` y":   "````x ``` y````",
		" padded ":  "`  padded  `",
		"new\nline": "`new line`",
	} {
		if have := mdCode(in); have != want {
			t.Errorf("mdCode(%q) = %q, want %q", in, have, want)
		}
		lines, _, _ := renderedText(t, []byte(mdCode(in)))
		if shown := strings.Join(lines, "\n"); shown != oneLine(in) {
			t.Errorf("mdCode(%q) renders as %q", in, shown)
		}
	}
}
