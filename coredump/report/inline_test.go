package report

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// TestNilDerefInlined: go-nil-inlined faults in (*Account).balance, which
// the compiler inlined into main.total, so the faulting pc belongs to
// main.total's code. The finding's location, the signal's function and the
// first crash frame are the inlined method at the line the program's own
// runtime.CallersFrames printed; main.total follows at its call line. The
// older toolchain has a different inline-tree layout history, and the
// stripped build has only the pclntab to name it.
func TestNilDerefInlined(t *testing.T) {
	for _, v := range []fixtures.Variant{fixtures.Default, {Go: "go1.22.12"}, {Strip: true}} {
		t.Run(v.String(), func(t *testing.T) {
			c := fixturetest.MustCrash(t, "go-nil-inlined", v)
			fact := func(k string) string {
				if len(c.Oracle.Facts[k]) != 1 {
					t.Fatalf("FACT %s printed %d times", k, len(c.Oracle.Facts[k]))
				}
				return c.Oracle.Facts[k][0]
			}
			fn, file, line := fact("fault_function"), fact("fault_file"), int(fixturetest.IntFact(t, c, "fault_line"))
			caller, callerLine := fact("caller_function"), int(fixturetest.IntFact(t, c, "caller_line"))
			if fn != "main.(*Account).balance" || caller != "main.total" {
				t.Fatalf("the program says it faulted in %s called from %s: the fixture no longer inlines", fn, caller)
			}
			p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			r := Build(p, Options{})

			if r.Signal == nil || r.Signal.Function != fn {
				t.Errorf("signal %+v, want function %s", r.Signal, fn)
			}
			if len(r.Findings) == 0 || r.Findings[0].Class != "nil-deref" || !r.Findings[0].Cause {
				t.Fatalf("first finding %+v, want the nil-deref cause", r.Findings)
			}
			fd := r.Findings[0]
			if l := fd.Location; l == nil || l.Function != fn || filepath.Base(l.File) != file || l.Line != line {
				t.Errorf("location %+v, want %s at %s:%d", fd.Location, fn, file, line)
			}
			if !strings.HasPrefix(fd.Summary, "Nil pointer dereference in "+fn+": ") {
				t.Errorf("summary %q does not name %s", fd.Summary, fn)
			}
			if v.Strip {
				// No DWARF: no variable or type to name, only the offset.
				if want := "Nil pointer dereference in " + fn + ": reading offset 0x18 of a nil pointer"; fd.Summary != want {
					t.Errorf("summary %q, want %q", fd.Summary, want)
				}
			} else {
				if want := "Nil pointer dereference in " + fn + ": a is nil (*main.Account); reading its field Balance at offset 0x18"; fd.Summary != want {
					t.Errorf("summary %q, want %q", fd.Summary, want)
				}
				if fd.Key != "*main.Account.Balance" {
					t.Errorf("key %q", fd.Key)
				}
			}
			for _, other := range r.Findings {
				for _, no := range c.Fixture.Spec.Expect["not_classes"].([]any) {
					if string(other.Class) == no.(string) {
						t.Errorf("finding %s: %s", other.Class, other.Summary)
					}
				}
			}

			if r.Crash == nil || len(r.Crash.Frames) < 2 {
				t.Fatalf("crash %+v", r.Crash)
			}
			f0, f1 := r.Crash.Frames[0], r.Crash.Frames[1]
			if f0.Function != fn || !f0.Inlined || filepath.Base(f0.File) != file || f0.Line != line {
				t.Errorf("first crash frame %+v, want %s (inlined) at %s:%d", f0, fn, file, line)
			}
			if f1.Function != caller || f1.Inlined || f1.Line != callerLine || f1.PC != f0.PC {
				t.Errorf("second crash frame %+v, want %s at line %d, same pc as the inlined frame", f1, caller, callerLine)
			}
			if pc := "0x" + strconv.FormatUint(c.Oracle.PC, 16); f0.PC.String() != pc {
				t.Errorf("first frame pc %s, the runtime printed pc=%s", f0.PC, pc)
			}
		})
	}
}
