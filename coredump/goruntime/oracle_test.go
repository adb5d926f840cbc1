package goruntime

import (
	"regexp"
	"strconv"
	"strings"
)

// The Go runtime prints, at a GOTRACEBACK=crash crash, the stack of every
// goroutine and of every M it interrupted with SIGQUIT, with the pc, sp
// and fp of each frame. That text is the oracle the unwinder is checked
// against. This file parses it.

// tbFrame is one printed frame.
type tbFrame struct {
	Func    string // as printed (runtime.gopanic is "panic")
	Inlined bool   // printed with "(...)"
	File    string
	Line    int
	PC      uint64 // 0 when not printed (inlined frames)
	SP      uint64
}

// tbBlock is one printed stack.
type tbBlock struct {
	Goroutine int64  // -1 for "runtime stack:"
	M         int    // m= in the header, -1 when nil or absent
	State     string // what the brackets hold first
	Locked    bool
	Frames    []tbFrame
	CreatedBy string
	CreatorG  int64
	// Signal is the PC= line that preceded the block (SIGQUIT dumps).
	SignalPC uint64
	// Unavailable: "goroutine running on other thread; stack unavailable".
	Unavailable bool
}

var (
	reTBHeader  = regexp.MustCompile(`^goroutine (\d+)(?: gp=0x[0-9a-f]+)?(?: m=(\d+|nil))?(?: mp=0x[0-9a-f]+)? \[([^\]]*)\]:$`)
	reTBFunc    = regexp.MustCompile(`^(\S.*)\((.*)\)$`)
	reTBPos     = regexp.MustCompile(`^\t(.*):(\d+)(?: \+0x[0-9a-f]+)?(?: fp=0x[0-9a-f]+ sp=(0x[0-9a-f]+) pc=(0x[0-9a-f]+))?$`)
	reTBCreated = regexp.MustCompile(`^created by (\S+)(?: in goroutine (\d+))?$`)
	reTBPC      = regexp.MustCompile(`^PC=(0x[0-9a-f]+) m=(\d+)`)
)

// parseTraceback splits the runtime's crash output into stacks.
func parseTraceback(stderr string) []*tbBlock {
	var out []*tbBlock
	var cur *tbBlock
	var lastPC uint64
	lines := strings.Split(stderr, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := reTBPC.FindStringSubmatch(l); m != nil {
			lastPC, _ = strconv.ParseUint(m[1][2:], 16, 64)
			continue
		}
		if m := reTBHeader.FindStringSubmatch(l); m != nil {
			id, _ := strconv.ParseInt(m[1], 10, 64)
			cur = &tbBlock{Goroutine: id, M: -1, SignalPC: lastPC}
			if m[2] != "" && m[2] != "nil" {
				cur.M, _ = strconv.Atoi(m[2])
			}
			st := m[3]
			cur.Locked = strings.Contains(st, "locked to thread")
			if j := strings.Index(st, ","); j >= 0 {
				st = st[:j]
			}
			cur.State = st
			out = append(out, cur)
			lastPC = 0
			continue
		}
		if l == "runtime stack:" {
			cur = &tbBlock{Goroutine: -1, M: -1}
			out = append(out, cur)
			continue
		}
		if cur == nil {
			continue
		}
		if l == "" || strings.HasPrefix(l, "-----") || strings.HasPrefix(l, "rax ") {
			cur = nil
			continue
		}
		if l == "goroutine running on other thread; stack unavailable" {
			cur.Unavailable = true
			continue
		}
		if m := reTBCreated.FindStringSubmatch(l); m != nil {
			cur.CreatedBy = m[1]
			if m[2] != "" {
				cur.CreatorG, _ = strconv.ParseInt(m[2], 10, 64)
			}
			i++ // its position line
			continue
		}
		if m := reTBFunc.FindStringSubmatch(l); m != nil && i+1 < len(lines) {
			p := reTBPos.FindStringSubmatch(lines[i+1])
			if p == nil {
				continue
			}
			i++
			f := tbFrame{Func: m[1], Inlined: m[2] == "..."}
			f.File = p[1]
			f.Line, _ = strconv.Atoi(p[2])
			if p[4] != "" {
				f.SP, _ = strconv.ParseUint(p[3][2:], 16, 64)
				f.PC, _ = strconv.ParseUint(p[4][2:], 16, 64)
			}
			cur.Frames = append(cur.Frames, f)
		}
	}
	return out
}
