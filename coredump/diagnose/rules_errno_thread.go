package diagnose

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/coredump/insn"
	"github.com/coreexplain/coreexplain/coredump/libc"
)

// errno-wrong-thread: a goroutine that is not locked to its OS thread
// sets errno in one cgo call and reads it in another; the goroutine can
// move to another thread between the calls (any blocking operation lets
// the scheduler run it elsewhere), and errno is per thread: errno is
// *__errno_location() (glibc and musl <errno.h>), a thread-local
// variable in glibc (csu/errno.c) and struct pthread's errno_val in musl
// (src/errno/__errno_location.c); both __errno_location add the thread
// pointer, %fs:0 on x86-64. cgo's two-result call form (r, err := C.f())
// reads errno inside the same call (Go src/cmd/cgo/doc.go).
func init() {
	Register(Rule{Name: "errno-wrong-thread", Run: ruleErrnoWrongThread})
}

// maxFuncScan bounds the code of one Go function disassembled.
const maxFuncScan = 1 << 20

var reErrnoWord = regexp.MustCompile(`(?i)\berrno\b|\bE[A-Z0-9]{2,15}\b`)

// mentionsErrno reports whether a panic message talks about errno: the
// word, an errno name (ECONNREFUSED) or an errno's text.
func mentionsErrno(msg string) bool {
	for _, m := range reErrnoWord.FindAllString(msg, -1) {
		if strings.EqualFold(m, "errno") {
			return true
		}
		for e := libc.Errno(1); e < 134; e++ {
			if e.Name() == m {
				return true
			}
		}
	}
	low := strings.ToLower(msg)
	for e := libc.Errno(1); e < 134; e++ {
		if d := e.Description(); d != "" && strings.Contains(low, strings.ToLower(d)) {
			return true
		}
	}
	return false
}

// cgoCalls lists the cgo calls (calls of pkg._Cfunc_NAME wrappers) in the
// code of the Go function fn, by disassembling it.
func cgoCalls(p *coredump.Process, gr *goruntime.Runtime, fn string) []string {
	f, ok := gr.Funcs.FuncByName(fn)
	if !ok || p.Arch != coredump.ArchAMD64 {
		return nil
	}
	code, _ := insn.ReadCode(p, p.Arch, f.Entry, f.End(), maxFuncScan) // disassemble the readable prefix only
	var out []string
	seen := map[string]bool{}
	for r := range code.Refs() {
		if r.Kind != insn.RefCall {
			continue
		}
		if callee, ok := gr.Funcs.FuncAt(r.Target); ok && callee.Entry == r.Target {
			name := callee.Name()
			if j := strings.Index(name, "._Cfunc_"); j >= 0 && !seen[name] {
				seen[name] = true
				out = append(out, "C."+name[j+len("._Cfunc_"):])
			}
		}
	}
	return out
}

// cgoWrapper returns the address of the C side of a cgo call of name:
// the _cgo_<hash>_Cfunc_<name> function cgo generates in the executable.
func cgoWrapper(p *coredump.Process, name string) uint64 {
	if p.Exe == nil {
		return 0
	}
	suffix := "_Cfunc_" + name
	for _, s := range p.Exe.Symbols() {
		if strings.HasPrefix(s.Name, "_cgo_") && strings.HasSuffix(s.Name, suffix) {
			return s.Addr
		}
	}
	return 0
}

func ruleErrnoWrongThread(f *Facts) []Finding {
	rt := libcView(f)
	if rt == nil || rt.Flavor == libc.None {
		return nil
	}
	gr, err := goruntime.Load(f.Proc)
	if err != nil {
		return nil
	}
	c, err := gr.Crash()
	if err != nil || c.G == nil || len(c.Panics) == 0 {
		return nil
	}
	g := c.G
	if g.LockedM() != nil {
		return nil // locked to its thread: its cgo calls share one errno
	}
	var pan *goruntime.Panic
	for _, p := range c.Panics {
		if mentionsErrno(p.Message()) {
			pan = p
		}
	}
	if pan == nil || pan.Frame == nil {
		return nil
	}
	calls := cgoCalls(f.Proc, gr, pan.Frame.Func)
	if len(calls) < 2 {
		return nil
	}
	// One of the calls must be an errno getter: C code that reads errno
	// and does not set it first. (cgo's two-result form sets errno to 0
	// before the call and reads it after, inside one call.)
	getter := ""
	for _, call := range calls {
		w := cgoWrapper(f.Proc, strings.TrimPrefix(call, "C."))
		if w == 0 {
			continue
		}
		if reads, writes := rt.ErrnoAccess(w, 2); reads && !writes {
			getter = call
			break
		}
	}
	if getter == "" {
		return nil
	}
	var cur *goruntime.Thread
	for _, t := range gr.Threads() {
		if t.Goroutine == g {
			cur = t
		}
	}
	if cur == nil {
		return nil
	}
	// Other threads that still hold an errno a C call left there.
	var others []*libc.Thread
	for _, t := range rt.Threads {
		if t.TID != cur.TID && t.Errno != nil && t.Errno.Err == nil && t.Errno.Value != 0 && t.Clobbered == nil {
			others = append(others, t)
		}
	}
	if len(others) == 0 {
		return nil
	}
	fd := Finding{Class: ErrnoWrongThread, Confidence: Medium, Cause: true, Rank: -5,
		Why:      "a core keeps no record of which thread each cgo call ran on: this rests on the program's own complaint about errno, its separate cgo calls, and the errno values other threads still hold",
		Location: &Location{TID: cur.TID, Goroutine: g.ID, Function: pan.Frame.Func, File: pan.Frame.File, Line: pan.Frame.Line}}
	fd.Summary = fmt.Sprintf("goroutine %d reads errno in a cgo call separate from the one that set it (%s) without being locked to its thread: the read ran on thread %d, while thread %d still holds %s — use the two-result form r, err := C.f(), or runtime.LockOSThread around the calls",
		g.ID, strings.Join(calls, ", "), cur.TID, others[0].TID, errnoText(others[0].Errno.Value))
	fd.Evidence = append(fd.Evidence,
		Evidence{What: fmt.Sprintf("the panic: %q", pan.Message()), Source: "goroutine " + fmt.Sprint(g.ID) + "'s _panic chain"},
		Evidence{What: fmt.Sprintf("%s makes separate cgo calls: %s", pan.Frame.Func, strings.Join(calls, ", ")),
			Source: "disassembly of " + pan.Frame.Func + " (calls of the _Cfunc_ wrappers)"},
		Evidence{What: fmt.Sprintf("%s reads errno in a call of its own: its C code loads from the address __errno_location returns and never stores there", getter),
			Source: "disassembly of the C function behind " + getter},
		Evidence{What: fmt.Sprintf("goroutine %d is not locked to an OS thread (g.lockedm = 0): between two cgo calls it can move to another thread", g.ID),
			Addr: AddrPtr(g.Addr), Source: "runtime.g"})
	curWhat := fmt.Sprintf("goroutine %d now runs on thread %d", g.ID, cur.TID)
	if cur.M != nil {
		curWhat += fmt.Sprintf(" (%s)", cur.M)
	}
	fd.Evidence = append(fd.Evidence, Evidence{What: curWhat, Source: "runtime.m of the thread"})
	for i, t := range others {
		if i == 5 {
			break
		}
		what := fmt.Sprintf("thread %d's errno slot holds %s", t.TID, errnoText(t.Errno.Value))
		if gt := gr.Thread(t.TID); gt != nil && gt.M != nil {
			what += " (" + gt.M.String()
			if gt.M.LockedG != 0 {
				if lg := gr.GByAddr(gt.M.LockedG); lg != nil {
					what += fmt.Sprintf(", now locked to goroutine %d", lg.ID)
				}
			}
			what += ")"
		}
		fd.Evidence = append(fd.Evidence, Evidence{What: what, Addr: AddrPtr(t.Errno.Addr), Value: fmt.Sprint(int32(t.Errno.Value)), Source: t.Errno.Source})
	}
	return []Finding{fd}
}
