package memory_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/memory"
)

// frameOf is the index of the first frame running fn.
func frameOf(t *testing.T, frames []memory.Frame, fn string) int {
	t.Helper()
	for i, f := range frames {
		if f.Function == fn {
			return i
		}
	}
	t.Fatalf("no frame runs %s", fn)
	return -1
}

// Each raw Delve error slice evaluation meets on a real core is put in
// terms of what to do next; the translation keeps Delve's error (Unwrap)
// and the raw text never reaches the message.
func TestExplainEval(t *testing.T) {
	type tc struct {
		fixture, expr, typ, fn string
		addr                   uint64
		raw                    string                   // Delve's error
		want                   func(k, main int) string // the message, given the frame and main.main's
	}
	for _, c := range []tc{
		{fixture: "cgo-dangling-slice", expr: "data", fn: "main.checksum", raw: "could not read 8 bytes from register 0 (size: 0)",
			want: func(k, m int) string {
				return fmt.Sprintf("data is in a register the core does not record for frame %d (main.checksum) (a frame above runtime.sigpanic keeps only what the runtime saved): "+
					"try --frame %d (main.main, where data evaluates) or ADDR:TYPE with the address of its slice header", k, m)
			}},
		{fixture: "cgo-dangling-slice", expr: "data", fn: "runtime.main", raw: "could not find symbol value for data",
			want: func(k, m int) string {
				return fmt.Sprintf("no variable data in frame %d (runtime.main); data evaluates in frame %d (main.main): try --frame %d", k, m, m)
			}},
		{fixture: "cgo-dangling-slice", expr: "nosuch", fn: "main.checksum", raw: "could not find symbol value for nosuch",
			want: func(k, m int) string {
				return fmt.Sprintf("no variable nosuch in frame %d (main.checksum) nor in any other frame of the goroutine; "+
					"a global is spelled package.name as the binary has it (main.pending), a slice in memory ADDR:TYPE", k)
			}},
		{fixture: "cgo-dangling-slice", expr: "req.Body", fn: "main.checksum", raw: "could not find symbol req.Body",
			want: func(k, m int) string {
				return fmt.Sprintf("no variable req in frame %d (main.checksum) nor in any other frame of the goroutine, and no global req.Body; "+
					"a global is spelled package.name as the binary has it (main.pending), a slice in memory ADDR:TYPE", k)
			}},
		{fixture: "cgo-dangling-slice-field", expr: "u.body", fn: "main.checksum", raw: "could not find loclist entry at ",
			want: func(k, m int) string {
				return fmt.Sprintf("u is not live at this pc in frame %d (main.checksum) (the compiler reuses its registers): try ADDR:TYPE with the address of its slice header", k)
			}},
		{fixture: "cgo-dangling-slice-field", expr: "0x4:upload", typ: "upload", addr: 4, fn: "main.checksum", raw: "no type entry found, use 'types' for a list of valid types",
			want: func(k, m int) string {
				return "no type named upload in the binary's DWARF: spell it as the binary does, e.g. main.upload"
			}},
		{fixture: "cgo-dangling-slice-field", expr: "0x4:Item", typ: "main.Item", addr: 4, fn: "main.checksum", raw: "no type entry found, use 'types' for a list of valid types",
			want: func(k, m int) string {
				return "no type named main.Item in the binary's DWARF: spell it as the binary does; it has no type of that name in any package"
			}},
		{fixture: "cgo-dangling-slice-field", expr: "0x4:byte", typ: "byte", addr: 4, fn: "main.checksum", raw: "error while reading spliced memory at 0x4",
			want: func(k, m int) string {
				return "no slice header can be read at 0x4: 0x4 is in the null page: a nil pointer plus offset 0x4"
			}},
	} {
		t.Run(c.fixture+"/"+c.expr+"/"+c.fn, func(t *testing.T) {
			_, p := crash(t, c.fixture)
			frames, err := memory.GoroutineFrames(p, 0)
			if err != nil {
				t.Fatal(err)
			}
			k, m := frameOf(t, frames, c.fn), frameOf(t, frames, "main.main")
			sp := memory.For(p)
			if c.typ != "" {
				_, err = sp.SliceAt(frames[k].Scope, c.addr, c.typ)
			} else {
				_, err = sp.SliceExpr(frames[k].Scope, c.expr)
			}
			if err == nil || !strings.Contains(err.Error(), c.raw) {
				t.Fatalf("Delve's error %v, want %q: the case no longer tests that translation", err, c.raw)
			}
			got := sp.ExplainEval(frames, k, c.expr, c.addr, c.typ, err)
			var ee *memory.EvalError
			if !errors.As(got, &ee) || !errors.Is(got, err) {
				t.Fatalf("%v is not an EvalError wrapping Delve's", got)
			}
			if want := c.want(k, m); got.Error() != want {
				t.Errorf("got  %q\nwant %q", got.Error(), want)
			}
		})
	}
}
