package report

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func renderText(r *Report, o TextOptions) string {
	var b bytes.Buffer
	WriteText(&b, r, o)
	return b.String()
}

// TestTextWrapsToWidth renders every crashed fixture's report at 60, 80
// (the default) and 120 columns: no line is wider than the width unless it
// is a single word (a function name or path longer than a line), and the
// words are the same at every width, so wrapping moved line breaks and
// nothing else.
func TestTextWrapsToWidth(t *testing.T) {
	// Lines only a wider terminal gets on one line, and lines a 60-column
	// one needs more of: both must occur or the width was not used.
	wide, narrower := 0, 0
	for _, name := range crashedFixtures(t) {
		t.Run(name, func(t *testing.T) {
			r, _, _ := buildFixture(t, name, Options{})
			def := renderText(r, TextOptions{})
			if at80 := renderText(r, TextOptions{Width: 80}); at80 != def {
				t.Errorf("Width 0 and Width 80 differ")
			}
			words := strings.Fields(def)
			lines := map[int]int{}
			for _, width := range []int{60, 80, 120} {
				out := renderText(r, TextOptions{Width: width})
				for i, l := range strings.Split(out, "\n") {
					if n := utf8.RuneCountInString(l); n > width && len(strings.Fields(l)) > 1 {
						t.Errorf("width %d: line %d has %d columns: %q", width, i+1, n, l)
					}
					if n := utf8.RuneCountInString(l); width == 120 && n > 80 {
						wide++
					}
				}
				if !slices.Equal(strings.Fields(out), words) {
					t.Errorf("width %d: the words differ from those at 80 columns:\n%s", width, out)
				}
				lines[width] = strings.Count(out, "\n")
			}
			if lines[60] < lines[80] || lines[80] < lines[120] {
				t.Errorf("lines at 60, 80, 120 columns: %d, %d, %d", lines[60], lines[80], lines[120])
			}
			if lines[60] > lines[120] {
				narrower++
			}
		})
	}
	if wide == 0 || narrower == 0 {
		t.Errorf("%d lines over 80 columns at 120, %d reports longer at 60 than at 120: the width changed nothing", wide, narrower)
	}
}

// TestTextWrapKeepsColourOutOfTheCount: colour escapes take no columns, so
// a coloured report wraps where a plain one does.
func TestTextWrapKeepsColourOutOfTheCount(t *testing.T) {
	r, _, _ := buildFixture(t, "cgo-abort-assert", Options{})
	for _, width := range []int{60, 120} {
		plain := renderText(r, TextOptions{Width: width})
		colour := renderText(r, TextOptions{Width: width, Color: true})
		if colour == plain {
			t.Fatal("no colour")
		}
		stripped := strings.Split(stripANSI(colour), "\n")
		if have, want := len(stripped), strings.Count(plain, "\n")+1; have != want {
			t.Errorf("width %d: %d lines in colour, %d plain", width, have, want)
		}
		for i, l := range strings.Split(plain, "\n") {
			if i < len(stripped) && strings.TrimRight(stripped[i], " ") != strings.TrimRight(l, " ") {
				t.Errorf("width %d, line %d: %q in colour, %q plain", width, i+1, stripped[i], l)
			}
		}
	}
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i < len(s) && s[i] != 'm' {
				i++
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
