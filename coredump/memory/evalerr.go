package memory

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/go-delve/delve/pkg/dwarf/reader"
	"github.com/go-delve/delve/pkg/proc"
)

// EvalError is a failed evaluation put in terms of what the user can do
// next; Err is Delve's own error.
type EvalError struct {
	Msg string
	Err error
}

func (e *EvalError) Error() string { return e.Msg }
func (e *EvalError) Unwrap() error { return e.Err }

var (
	// Delve says "could not find symbol value for X" for an unknown
	// name, "could not find symbol X.Y" when it then tried X.Y as a
	// package's global.
	reNoSymbol = regexp.MustCompile(`could not find symbol (?:value for )?([A-Za-z_][A-Za-z0-9_.]*)`)
	// A value the DWARF location description does not cover at this pc
	// (no loclist entry, an empty location) or places in a register the
	// frame has no value for (Delve's registers of a frame above
	// runtime.sigpanic or of a caller are only those it could recover).
	reNotLive  = regexp.MustCompile(`could not find loclist entry|empty OP stack`)
	reNoRegVal = regexp.MustCompile(`could not read \d+ bytes from register \d+`)
	reRootVar  = regexp.MustCompile(`^[(*&]*([A-Za-z_][A-Za-z0-9_]*)`)
)

// ExplainEval turns Delve's error evaluating expr in frame k of frames
// into what the user can do: another frame where expr evaluates, the
// spelling of a type as the binary's DWARF has it, the ADDR:TYPE form.
// addr and typ are the header address and element type of an ADDR:TYPE
// request (typ "" for an expression). Errors it does not know are returned as they are, with the
// frame named.
func (s *Space) ExplainEval(frames []Frame, k int, expr string, addr uint64, typ string, err error) error {
	if err == nil {
		return nil
	}
	fr := frames[k]
	where := fmt.Sprintf("frame %d (%s)", k, fr.Function)
	msg := err.Error()
	switch {
	case errors.Is(err, reader.ErrTypeNotFound) || strings.Contains(msg, reader.ErrTypeNotFound.Error()):
		return &EvalError{Msg: noTypeMsg(fr.Scope, typ), Err: err}
	case reNoSymbol.MatchString(msg):
		name, global := reNoSymbol.FindStringSubmatch(msg)[1], ""
		if i := strings.IndexByte(name, '.'); i > 0 {
			name, global = name[:i], ", and no global "+name
		}
		if n := otherFrame(frames, k, expr); n >= 0 {
			return &EvalError{Msg: fmt.Sprintf("no variable %s in %s; %s evaluates in frame %d (%s): try --frame %d",
				name, where, expr, n, frames[n].Function, n), Err: err}
		}
		return &EvalError{Msg: fmt.Sprintf("no variable %s in %s nor in any other frame of the goroutine%s; "+
			"a global is spelled package.name as the binary has it (main.pending), a slice in memory ADDR:TYPE", name, where, global), Err: err}
	case typ != "" && (strings.Contains(msg, "error while reading spliced memory") || strings.Contains(msg, "read out of bounds")):
		r := s.Classify(addr)
		return &EvalError{Msg: fmt.Sprintf("no slice header can be read at %#x: %s", addr, r.Summary), Err: err}
	case reNotLive.MatchString(msg), reNoRegVal.MatchString(msg):
		v := expr
		if m := reRootVar.FindStringSubmatch(expr); m != nil {
			v = m[1]
		}
		why := "is not live at this pc in " + where + " (the compiler reuses its registers)"
		if reNoRegVal.MatchString(msg) {
			why = "is in a register the core does not record for " + where
			if k > 0 && frames[k-1].Function == "runtime.sigpanic" {
				why += " (a frame above runtime.sigpanic keeps only what the runtime saved)"
			}
		}
		try := "ADDR:TYPE with the address of its slice header"
		if n := otherFrame(frames, k, expr); n >= 0 {
			try = fmt.Sprintf("--frame %d (%s, where %s evaluates) or %s", n, frames[n].Function, expr, try)
		}
		return &EvalError{Msg: fmt.Sprintf("%s %s: try %s", v, why, try), Err: err}
	}
	return fmt.Errorf("%s in %s: %w", expr, where, err)
}

// otherFrame is the frame nearest to k, outward first, where expr
// evaluates to a readable value; -1 when none does.
func otherFrame(frames []Frame, k int, expr string) int {
	order := make([]int, 0, len(frames))
	for i := k + 1; i < len(frames); i++ {
		order = append(order, i)
	}
	for i := k - 1; i >= 0; i-- {
		order = append(order, i)
	}
	for _, i := range order {
		if frames[i].Scope == nil {
			continue
		}
		if _, err := Eval(frames[i].Scope, expr); err == nil {
			return i
		}
	}
	return -1
}

// goTypeAliases are the predeclared aliases DWARF knows only by the type
// they alias (the Go spec's byte and rune).
var goTypeAliases = map[string]string{"byte": "uint8", "rune": "int32"}

// DWARFTypeName spells an element type as the binary's DWARF does: byte
// and rune are uint8 and int32 there, also inside composite types.
func DWARFTypeName(t string) string {
	return reTypeWord.ReplaceAllStringFunc(t, func(w string) string {
		if a, ok := goTypeAliases[w]; ok {
			return a
		}
		return w
	})
}

var reTypeWord = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_.]*`)

// noTypeMsg says that typ is not in the binary's DWARF and suggests the
// names it does have with the same last element.
func noTypeMsg(sc *proc.EvalScope, typ string) string {
	base := strings.TrimLeft(typ, "[]*")
	msg := fmt.Sprintf("no type named %s in the binary's DWARF: spell it as the binary does", base)
	var near []string
	if sc != nil && sc.BinInfo != nil {
		if all, err := sc.BinInfo.Types(); err == nil {
			last := base[strings.LastIndexByte(base, '.')+1:]
			for _, n := range all {
				if n != base && (n == last || strings.HasSuffix(n, "."+last)) && !strings.ContainsAny(n[:1], "*[") {
					near = append(near, n)
				}
			}
		}
	}
	sort.Strings(near)
	switch {
	case len(near) > 3:
		msg += ", e.g. " + strings.Join(near[:3], ", ")
	case len(near) > 0:
		msg += ", e.g. " + strings.Join(near, ", ")
	case strings.Contains(base, "."):
		msg += "; it has no type of that name in any package"
	default:
		msg += ", package-qualified as in main.Item"
	}
	return msg
}
