package diagnose

import (
	"errors"
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"golang.org/x/arch/x86/x86asm"
)

// SemaWait is a goroutine parked on a runtime semaphore (semacquire): a
// sync.Mutex, sync.RWMutex, sync.WaitGroup or another user of the
// runtime's semaphore table.
type SemaWait struct {
	G     uint64 // the waiting g
	Sema  uint64 // the semaphore's address (sudog.elem)
	Sudog uint64
	// AcquireTime is the runtime's cputicks when it began to wait; only
	// recorded while block or mutex profiling is on.
	AcquireTime int64
}

// maxSemaWaiters bounds the walk of the semaphore table; target memory may
// be corrupt.
const maxSemaWaiters = 1 << 22

// readSemaWaiters walks runtime.semtable, the table of treaps (one per
// semaphore address, chained through waitlink) of the goroutines parked in
// semacquire, and returns them keyed by g.
func readSemaWaiters(p *coredump.Process, l *goruntime.Layout, table coredump.Symbol, tabSize int64) (map[uint64]SemaWait, error) {
	if tabSize <= 0 || table.Size == 0 || table.Size%uint64(tabSize) != 0 {
		return nil, fmt.Errorf("runtime.semtable of %d bytes does not hold %d roots", table.Size, tabSize)
	}
	stride := table.Size / uint64(tabSize)
	off := func(typ, field string) (uint64, error) {
		v, err := l.Off(typ, field)
		return uint64(v), err
	}
	var errs []error
	must := func(typ, field string) uint64 {
		v, err := off(typ, field)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	treapOff := must("runtime.semaRoot", "treap")
	gOff, elemOff := must("runtime.sudog", "g"), must("runtime.sudog", "elem")
	prevOff, nextOff := must("runtime.sudog", "prev"), must("runtime.sudog", "next")
	waitlinkOff := must("runtime.sudog", "waitlink")
	acqOff, _ := off("runtime.sudog", "acquiretime")
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := map[uint64]SemaWait{}
	seen := map[uint64]bool{}
	var firstErr error
	for i := uint64(0); i < uint64(tabSize); i++ {
		root, err := p.ReadUint64(table.Addr + i*stride + treapOff)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("semaphore root %d: %w", i, err)
			}
			continue
		}
		// Depth-first over the treap (prev/next are the children); each
		// node heads the list of waiters on one address.
		stack := []uint64{root}
		for len(stack) > 0 {
			node := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if node == 0 || seen[node] {
				continue
			}
			if len(seen) >= maxSemaWaiters {
				return out, fmt.Errorf("more than %d semaphore waiters: the table looks corrupt", maxSemaWaiters)
			}
			seen[node] = true
			sema, err := p.ReadUint64(node + elemOff)
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("sudog at %#x: %w", node, err)
				}
				continue
			}
			for s := node; s != 0; {
				g, err1 := p.ReadUint64(s + gOff)
				next, err2 := p.ReadUint64(s + waitlinkOff)
				if err := errors.Join(err1, err2); err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("sudog at %#x: %w", s, err)
					}
					break
				}
				w := SemaWait{G: g, Sema: sema, Sudog: s}
				if acqOff != 0 {
					if v, err := p.ReadUint64(s + acqOff); err == nil {
						w.AcquireTime = int64(v)
					}
				}
				if g != 0 {
					out[g] = w
				}
				if s != node {
					seen[s] = true
				}
				if next != 0 && seen[next] {
					break // a cycle
				}
				s = next
			}
			prev, err1 := p.ReadUint64(node + prevOff)
			next, err2 := p.ReadUint64(node + nextOff)
			if err1 == nil {
				stack = append(stack, prev)
			}
			if err2 == nil {
				stack = append(stack, next)
			}
		}
	}
	return out, firstErr
}

// CodeRef is a reference from machine code: a direct call, or a
// pc-relative memory operand (how Go code addresses a global variable).
type CodeRef struct {
	At     uint64 // the instruction
	Target uint64
	Call   bool
}

// maxFuncBytes bounds the code decoded for one function.
const maxFuncBytes = 1 << 20

// codeRefs decodes the amd64 machine code of [entry, end) and returns the
// calls and pc-relative operands in it.
func codeRefs(p *coredump.Process, entry, end uint64) ([]CodeRef, error) {
	if p.Arch != coredump.ArchAMD64 {
		return nil, fmt.Errorf("decoding %s code is not supported", p.Arch)
	}
	if end <= entry || end-entry > maxFuncBytes {
		return nil, fmt.Errorf("function at %#x: bad size %d", entry, end-entry)
	}
	code := make([]byte, end-entry)
	if _, err := p.ReadMemory(code, entry); err != nil {
		return nil, err
	}
	var out []CodeRef
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil || inst.Len == 0 {
			off++ // padding or data between functions
			continue
		}
		pc := entry + uint64(off)
		next := pc + uint64(inst.Len)
		for _, a := range inst.Args {
			switch a := a.(type) {
			case x86asm.Rel:
				if inst.Op == x86asm.CALL {
					out = append(out, CodeRef{At: pc, Target: uint64(int64(next) + int64(a)), Call: true})
				}
			case x86asm.Mem:
				if a.Base == x86asm.RIP && a.Index == 0 {
					out = append(out, CodeRef{At: pc, Target: uint64(int64(next) + a.Disp)})
				}
			}
		}
		off += inst.Len
	}
	return out, nil
}
