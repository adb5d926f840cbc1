package goruntime

import (
	"debug/elf"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/insn"
)

// C compilers turn a call in tail position into a jump: the caller's
// frame is gone from the stack (run_job → jmp write_result leaves only
// write_result above run_job's caller). When the call into the chain is
// known — a direct call instruction before the return address, or the
// cgo wrapper asmcgocall was asked to call — and the only way from that
// callee to the frame found on the stack is a chain of unconditional
// jumps, the missing frames are put back, marked TailCall.

const maxTailDepth = 4

// tailCaller is a function reached by tail jumps, and the jump's address.
type tailCaller struct {
	name string
	jmp  uint64
	fn   coredump.Symbol
}

// tailChain returns the functions between target (called) and callee
// (the frame on the stack), outermost first; nil when there is none or
// the chain is ambiguous.
func tailChain(p *coredump.Process, target, callee uint64) []tailCaller {
	im := p.FindImage(target)
	if im == nil || target == callee {
		return nil
	}
	type node struct {
		at    uint64
		chain []tailCaller
	}
	var found [][]tailCaller
	queue := []node{{at: target}}
	seen := map[uint64]bool{target: true}
	for len(queue) > 0 && len(found) < 2 {
		n := queue[0]
		queue = queue[1:]
		if len(n.chain) >= maxTailDepth {
			continue
		}
		sym, ok := im.SymbolAt(n.at)
		if !ok || sym.Addr != n.at {
			continue
		}
		for _, j := range tailJumps(p, sym) {
			c := append(append([]tailCaller(nil), n.chain...), tailCaller{name: sym.Name, jmp: j.at, fn: sym})
			if j.target == callee {
				found = append(found, c)
				continue
			}
			if !seen[j.target] {
				seen[j.target] = true
				queue = append(queue, node{at: j.target, chain: c})
			}
		}
	}
	if len(found) != 1 {
		return nil
	}
	return found[0]
}

type jump struct{ at, target uint64 }

// tailJumps decodes a function and returns its unconditional direct jumps
// that leave it.
func tailJumps(p *coredump.Process, fn coredump.Symbol) []jump {
	var out []jump
	for ref := range funcCode(p, fn.Addr, fn.Size).Refs() {
		if ref.Kind == insn.RefJump && (ref.Target < fn.Addr || ref.Target >= fn.Addr+fn.Size) {
			out = append(out, jump{at: ref.At, target: ref.Target})
		}
	}
	return out
}

// callTarget returns the function a return address's call instruction
// called directly (e8 rel32), 0 when the call is indirect or unknown.
func callTarget(p *coredump.Process, ret uint64) uint64 {
	var b [5]byte
	if _, err := p.ReadMemory(b[:], ret-5); err != nil || b[0] != 0xe8 {
		return 0
	}
	rel := int32(uint32(b[1]) | uint32(b[2])<<8 | uint32(b[3])<<16 | uint32(b[4])<<24)
	return uint64(int64(ret) + int64(rel))
}

// cgoWrapper returns the address of the C wrapper cgo generated for the Go
// function main._Cfunc_NAME (_cgo_<hash>_Cfunc_NAME), which asmcgocall
// called.
func cgoWrapper(p *coredump.Process, goFunc string) uint64 {
	i := strings.LastIndex(goFunc, "._Cfunc_")
	if i < 0 || p.Exe == nil {
		return 0
	}
	suffix := goFunc[i+1:] // _Cfunc_NAME
	for _, s := range p.Exe.Symbols() {
		if s.Kind == elf.STT_FUNC && strings.HasPrefix(s.Name, "_cgo_") && strings.HasSuffix(s.Name, suffix) {
			return s.Addr
		}
	}
	return 0
}

// addTailCalls inserts the frames of tail-called C functions between a C
// frame and its caller.
func (r *Runtime) addTailCalls(frames []Frame) []Frame {
	var out []Frame
	for i, f := range frames {
		out = append(out, f)
		if f.Kind != FrameC || f.Entry == 0 || i+1 >= len(frames) {
			continue
		}
		caller := frames[i+1]
		if caller.Trap || caller.Kind == FrameSignal {
			continue
		}
		target := callTarget(r.Proc, caller.PC)
		if caller.Func == "runtime.asmcgocall" || caller.Func == "runtime.asmcgocall_landingpad" {
			// asmcgocall called the cgo wrapper through a register (Go
			// 1.22+: via asmcgocall_landingpad's jump).
			target = 0
			for _, g := range frames[i+1:] {
				if strings.Contains(g.Func, "._Cfunc_") {
					target = cgoWrapper(r.Proc, g.Func)
					break
				}
			}
		}
		if target == 0 || target == f.Entry {
			continue
		}
		chain := tailChain(r.Proc, target, f.Entry)
		for k := len(chain) - 1; k >= 0; k-- {
			tc := chain[k]
			fr := Frame{PC: tc.jmp, SP: f.CFA, CFA: f.CFA, Func: tc.name, Entry: tc.fn.Addr, Kind: FrameC,
				Module: f.Module, Trap: true, TailCall: true, G: f.G}
			out = append(out, fillCFrame(r.Proc, r.cLines(), fr))
		}
	}
	return out
}
