package goruntime

import (
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// Green Tea's inline mark bits are found where the runtime has them: in
// the DWARF of a Go 1.26 build, not in a Go 1.25 build (an experiment
// there, off by default), and by version for a binary without DWARF.
func TestInlineMarksLayout(t *testing.T) {
	for _, tc := range []struct {
		v    fixtures.Variant
		want inlineMarks
	}{
		{fixtures.Variant{Go: "go1.25.14"}, inlineMarks{}},
		{fixtures.Default, defaultInlineMarks},
		{fixtures.Variant{Strip: true}, defaultInlineMarks},
	} {
		t.Run(tc.v.String(), func(t *testing.T) {
			c := fixturetest.MustCrash(t, "go-heap-unswept", tc.v)
			p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			b, err := LoadBinary(p.Exe)
			if err != nil {
				t.Fatal(err)
			}
			if got := newInlineMarks(b); got != tc.want {
				t.Errorf("%s (layout from DWARF: %v): inline marks %+v, want %+v", b.Version, b.Layout.FromDWARF, got, tc.want)
			}
		})
	}
}
