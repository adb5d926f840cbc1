package goruntime

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Argument words of Go frames, as the runtime's traceback prints them
// ("main.writer(0x189be8f1a000, 0x1, 0x0?)"). The compiler describes the
// layout of a function's arguments in FUNCDATA_ArgInfo and which spill
// slots are live at each pc in FUNCDATA_ArgLiveInfo (runtime/traceback.go
// printArgs); register arguments are only in memory where the function
// spilled them, hence the "?" marks.

// Indexes and encoding of the argument tables (internal/abi: unchanged
// since Go 1.17 and 1.18).
const (
	funcdataArgInfo     = 5
	funcdataArgLiveInfo = 6
	pcdataArgLiveIndex  = 3

	traceArgsEndSeq         = 0xff
	traceArgsStartAgg       = 0xfe
	traceArgsEndAgg         = 0xfd
	traceArgsDotdotdot      = 0xfc
	traceArgsOffsetTooLarge = 0xfb
	traceArgsMaxLen         = (5*3+2)*10 + 1
)

// Arg is one printed component of a frame's arguments.
type Arg struct {
	// Word is the value, masked to Size bytes.
	Word uint64
	Size uint8
	// Stale marks a register argument whose spill slot may not hold its
	// value at this pc (printed with "?").
	Stale bool
	// Mark is "{", "}", "..." or "_" for the structure markers the
	// runtime prints; Word and Size are unset then.
	Mark string
}

// FrameArgs reads the arguments of a non-inlined Go frame as the runtime's
// traceback does. It returns nil for inlined frames, C frames and
// functions without argument information.
func (r *Runtime) FrameArgs(f *Frame) ([]Arg, error) {
	if f.Kind != FrameGo || f.Inlined || f.CFA == 0 {
		return nil, nil
	}
	fn, ok := r.Funcs.FuncAt(f.PC)
	if !ok {
		return nil, nil
	}
	info := fn.FuncData(funcdataArgInfo)
	if info == nil {
		return nil, nil
	}
	pc := f.PC
	if !f.Trap && pc > fn.Entry {
		pc--
	}
	live := fn.FuncData(funcdataArgLiveInfo)
	liveIdx := int32(-1)
	if live != nil {
		liveIdx, _ = fn.PCData(pcdataArgLiveIndex, pc)
	}
	startOffset := uint8(0xff)
	if len(live) > 0 {
		startOffset = live[0]
	}
	isLive := func(off, slot uint8) bool {
		if live == nil || liveIdx <= 0 || off < startOffset {
			return true
		}
		i := int(liveIdx) + int(slot/8)
		if i >= len(live) {
			return true
		}
		return live[i]&(1<<(slot%8)) != 0
	}
	argp := f.CFA // amd64: arguments start at the caller's SP
	var mem [256]byte
	// A short read is fine: n bounds the slots used below, and an
	// argument past it is reported unreadable.
	n, _ := r.Proc.ReadMemory(mem[:], argp)
	var out []Arg
	slot := uint8(0)
	for pi := 0; pi < len(info) && pi < traceArgsMaxLen; {
		o := info[pi]
		pi++
		switch o {
		case traceArgsEndSeq:
			return out, nil
		case traceArgsStartAgg:
			out = append(out, Arg{Mark: "{"})
		case traceArgsEndAgg:
			out = append(out, Arg{Mark: "}"})
		case traceArgsDotdotdot:
			out = append(out, Arg{Mark: "..."})
		case traceArgsOffsetTooLarge:
			out = append(out, Arg{Mark: "_"})
		default:
			if pi >= len(info) {
				return out, fmt.Errorf("%s: truncated argument information", fn.Name())
			}
			sz := info[pi]
			pi++
			if int(o)+8 > n {
				return out, fmt.Errorf("%s: arguments at %#x unreadable", fn.Name(), argp)
			}
			x := binary.LittleEndian.Uint64(mem[o:])
			if sz < 8 {
				x = x << (64 - 8*uint(sz)) >> (64 - 8*uint(sz))
			}
			out = append(out, Arg{Word: x, Size: sz, Stale: !isLive(o, slot)})
			if o >= startOffset {
				slot++
			}
		}
	}
	return out, nil
}

// FormatArgs renders arguments as the runtime prints them.
func FormatArgs(args []Arg) string {
	var b strings.Builder
	start := true
	for _, a := range args {
		switch a.Mark {
		case "}":
			b.WriteString("}")
			start = false
			continue
		}
		if !start {
			b.WriteString(", ")
		}
		switch a.Mark {
		case "{":
			b.WriteString("{")
			start = true
			continue
		case "":
			fmt.Fprintf(&b, "%#x", a.Word)
			if a.Stale {
				b.WriteString("?")
			}
		default:
			b.WriteString(a.Mark)
		}
		start = false
	}
	return b.String()
}

// PointerArgs returns the live word-sized arguments of a frame, in order:
// the candidates for the objects a function works on (a map, a channel,
// a mutex).
func PointerArgs(args []Arg) []uint64 {
	var out []uint64
	for _, a := range args {
		if a.Mark == "" && a.Size == 8 && !a.Stale {
			out = append(out, a.Word)
		}
	}
	return out
}
