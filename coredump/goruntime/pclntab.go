package goruntime

import (
	"fmt"
	"strings"

	"github.com/coreexplain/coreexplain/coredump/gobin"
)

// The pclntab (.gopclntab) is the runtime's own symbol table: every Go
// function's entry, name, frame-size (pcsp), file and line (pcfile, pcln)
// and inline-tree tables. The runtime prints its tracebacks from it, so
// reading it here gives frames exactly as the runtime names them, and it
// survives -ldflags="-s -w". Package gobin reads the table; this file adds
// what only the runtime's view knows: the roles of the FuncIDs, which
// change between releases.

// FuncTable is the executable's parsed .gopclntab with the roles of its
// FuncIDs. Lookups do not allocate.
type FuncTable struct {
	tab *gobin.Table
	ids funcIDs
	// MinPC and MaxPC bound the Go text.
	MinPC, MaxPC uint64
}

// Func is one function of the table.
type Func struct {
	gobin.Func
	ids *funcIDs
}

// Logical is one logical frame of a physical one: the function itself or a
// function inlined into it.
type Logical = gobin.Logical

// newFuncTable parses the .gopclntab bytes. text is the run-time address
// of moduledata.text; gofunc the static data funcdata offsets point into
// (nil when unknown: no inline trees then).
func newFuncTable(data []byte, text uint64, gofunc []byte, ids funcIDs) (*FuncTable, error) {
	tab, err := gobin.NewTable(data, text, gofunc)
	if err != nil {
		return nil, err
	}
	t := &FuncTable{tab: tab, ids: ids, MinPC: tab.MinPC, MaxPC: tab.MaxPC}
	if t.ids.wrapper == 0 {
		t.ids.inferWrapper(t)
	}
	return t, nil
}

func (t *FuncTable) wrap(f gobin.Func) Func { return Func{Func: f, ids: &t.ids} }

// NumFuncs is the number of functions in the table.
func (t *FuncTable) NumFuncs() int { return t.tab.NumFuncs() }

// FuncAt returns the function whose code contains pc.
func (t *FuncTable) FuncAt(pc uint64) (Func, bool) {
	if t == nil {
		return Func{}, false
	}
	f, ok := t.tab.FuncAt(pc)
	if !ok {
		return Func{}, false
	}
	return t.wrap(f), true
}

// FuncByName returns the function called name (the first, if the name is
// not unique).
func (t *FuncTable) FuncByName(name string) (Func, bool) {
	f, ok := t.tab.FuncByName(name)
	if !ok {
		return Func{}, false
	}
	return t.wrap(f), true
}

// Funcs calls fn for every function in address order.
func (t *FuncTable) Funcs(fn func(Func) bool) {
	t.tab.Funcs(func(f gobin.Func) bool { return fn(t.wrap(f)) })
}

// Kind says what special role the function plays for unwinding.
func (f Func) Kind() FuncKind { return f.ids.kindOf(f.FuncID()) }

// funcIDs maps the runtime's FuncID values, which change between
// releases (Go 1.23 added corostart, 1.25 runFinalizers and runCleanups),
// to the roles the unwinder cares about. The values come from the
// binary's DWARF constants internal/abi.FuncID_*; without DWARF they are
// learnt from the functions that carry them (runtime.systemstack carries
// FuncID_systemstack, ...).
type funcIDs struct {
	byID    map[uint8]FuncKind
	wrapper uint8 // FuncIDWrapper; 0 when unknown
	// Function flag bits (internal/abi.FuncFlag*).
	flagTopFrame, flagSPWrite, flagAsm uint8
}

// FuncKind is the role of a function in unwinding and crash handling.
type FuncKind uint8

const (
	KindNormal FuncKind = iota
	KindWrapper
	KindAbort
	KindAsmcgocall
	KindAsyncPreempt
	KindCgocallback
	KindDebugCall
	KindGoexit
	KindGogo
	KindGopanic
	KindMcall
	KindMorestack
	KindMstart
	KindPanicwrap
	KindRt0
	KindRuntimeMain
	KindSigpanic
	KindSystemstack
	KindSystemstackSwitch
	KindOther // another special function (gcBgMarkWorker, runfinq, ...)
)

var funcKindNames = [...]string{"normal", "wrapper", "abort", "asmcgocall", "asyncPreempt", "cgocallback",
	"debugCall", "goexit", "gogo", "gopanic", "mcall", "morestack", "mstart", "panicwrap", "rt0_go",
	"runtime.main", "sigpanic", "systemstack", "systemstack_switch", "other"}

func (k FuncKind) String() string {
	if int(k) < len(funcKindNames) {
		return funcKindNames[k]
	}
	return fmt.Sprintf("FuncKind(%d)", uint8(k))
}

// specialFuncs names, for each FuncID constant suffix, the runtime
// function that carries it and the role.
var specialFuncs = map[string]struct {
	fn   string
	kind FuncKind
}{
	"abort":              {"runtime.abort", KindAbort},
	"asmcgocall":         {"runtime.asmcgocall", KindAsmcgocall},
	"asyncPreempt":       {"runtime.asyncPreempt", KindAsyncPreempt},
	"cgocallback":        {"runtime.cgocallback", KindCgocallback},
	"debugCallV2":        {"runtime.debugCallV2", KindDebugCall},
	"goexit":             {"runtime.goexit", KindGoexit},
	"gogo":               {"runtime.gogo", KindGogo},
	"gopanic":            {"runtime.gopanic", KindGopanic},
	"mcall":              {"runtime.mcall", KindMcall},
	"morestack":          {"runtime.morestack", KindMorestack},
	"mstart":             {"runtime.mstart", KindMstart},
	"panicwrap":          {"runtime.panicwrap", KindPanicwrap},
	"rt0_go":             {"runtime.rt0_go", KindRt0},
	"runtime_main":       {"runtime.main", KindRuntimeMain},
	"sigpanic":           {"runtime.sigpanic", KindSigpanic},
	"systemstack":        {"runtime.systemstack", KindSystemstack},
	"systemstack_switch": {"runtime.systemstack_switch", KindSystemstackSwitch},
}

// funcIDsFromDWARF reads the FuncID and FuncFlag constants.
func funcIDsFromDWARF(l *Layout) (funcIDs, bool) {
	ids := funcIDs{byID: map[uint8]FuncKind{}}
	consts := l.Consts("internal/abi.FuncID")
	if len(consts) == 0 {
		return ids, false
	}
	for name, v := range consts {
		suffix := strings.TrimPrefix(name, "internal/abi.FuncID")
		switch {
		case suffix == "Wrapper":
			ids.wrapper = uint8(v)
		case suffix == "Normal":
		case strings.HasPrefix(suffix, "_"):
			if s, ok := specialFuncs[suffix[1:]]; ok {
				ids.byID[uint8(v)] = s.kind
			} else {
				ids.byID[uint8(v)] = KindOther
			}
		}
	}
	ids.flagTopFrame, ids.flagSPWrite, ids.flagAsm = defaultFuncFlags()
	if v, ok := l.Const("internal/abi.FuncFlagTopFrame"); ok {
		ids.flagTopFrame = uint8(v)
	}
	if v, ok := l.Const("internal/abi.FuncFlagSPWrite"); ok {
		ids.flagSPWrite = uint8(v)
	}
	if v, ok := l.Const("internal/abi.FuncFlagAsm"); ok {
		ids.flagAsm = uint8(v)
	}
	return ids, ids.wrapper != 0
}

// learnFuncIDs derives the FuncID roles from the functions that carry
// them, for binaries without DWARF.
func learnFuncIDs(t *FuncTable) {
	ids := funcIDs{byID: map[uint8]FuncKind{}}
	ids.flagTopFrame, ids.flagSPWrite, ids.flagAsm = defaultFuncFlags()
	maxSpecial := uint8(0)
	for _, s := range specialFuncs {
		f, ok := t.FuncByName(s.fn)
		if !ok {
			continue
		}
		if id := f.FuncID(); id != 0 {
			ids.byID[id] = s.kind
			maxSpecial = max(maxSpecial, id)
		}
	}
	t.ids = ids
	t.ids.inferWrapper(t)
	if t.ids.wrapper <= maxSpecial {
		t.ids.wrapper = 0
	}
}

// inferWrapper sets the wrapper FuncID to the largest FuncID any function
// carries: FuncIDWrapper is the last constant of the enumeration in every
// release, and every binary has autogenerated wrappers.
func (ids *funcIDs) inferWrapper(t *FuncTable) {
	best := uint8(0)
	t.tab.Funcs(func(f gobin.Func) bool {
		best = max(best, f.FuncID())
		return true
	})
	if _, special := ids.byID[best]; !special {
		ids.wrapper = best
	}
}

func (ids *funcIDs) kindOf(id uint8) FuncKind {
	if id == 0 {
		return KindNormal
	}
	if ids.wrapper != 0 && id == ids.wrapper {
		return KindWrapper
	}
	if k, ok := ids.byID[id]; ok {
		return k
	}
	return KindOther
}

// TopFrame reports a function that is the outermost frame of its stack.
func (f Func) TopFrame() bool { return f.Flag()&f.ids.flagTopFrame != 0 }

// SPWrite reports a function that writes SP in ways pcsp cannot describe.
func (f Func) SPWrite() bool { return f.Flag()&f.ids.flagSPWrite != 0 }

// IsWrapper reports whether a logical frame with funcID id is an
// autogenerated wrapper.
func (t *FuncTable) IsWrapper(id uint8) bool { return t.ids.wrapper != 0 && id == t.ids.wrapper }

// KindOfID returns the role of a raw FuncID.
func (t *FuncTable) KindOfID(id uint8) FuncKind { return t.ids.kindOf(id) }
