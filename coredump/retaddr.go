package coredump

import (
	"fmt"
	"io"
)

// IsReturnAddress reports whether ra points into executable code just
// after a call instruction: what every return address saved on a stack
// must do.
func (p *Process) IsReturnAddress(ra uint64) bool {
	m := p.FindMapping(ra)
	if m == nil || m.Perm&PermExec == 0 || ra < 8 {
		return false
	}
	var b [7]byte
	if _, err := p.ReadMemory(b[:], ra-7); err != nil {
		return false
	}
	return followsCall(p.Arch, b)
}

// followsCall reports whether the 7 bytes before a return address end
// with a call instruction.
func followsCall(a Arch, b [7]byte) bool {
	if a == ArchARM64 {
		w := le.Uint32(b[3:])
		// bl imm26, blr xN
		return w&0xfc000000 == 0x94000000 || w&0xfffffc1f == 0xd63f0000
	}
	switch {
	case b[2] == 0xe8: // call rel32
		return true
	case b[5] == 0xff && (b[6]>>3)&7 == 2 && b[6]>>6 == 3: // call *%reg
		return true
	case b[4] == 0xff && (b[5]>>3)&7 == 2: // call *disp8(%reg) / call *(%reg) + sib
		return true
	case b[1] == 0xff && (b[2]>>3)&7 == 2 && b[2]>>6 == 0 && b[2]&7 == 5: // call *disp32(%rip)
		return true
	case b[1] == 0xff && (b[2]>>3)&7 == 2 && b[2]>>6 == 2: // call *disp32(%reg)
		return true
	}
	return false
}

// maxFPChecked bounds the saved return addresses checkCallSites reads.
const maxFPChecked = 256

// minFPChecked is how many return addresses checkCallSites needs to
// judge; fewer say nothing either way.
const minFPChecked = 4

// checkCallSites walks every thread's frame-pointer chain in the core's
// memory and checks the saved return addresses that land in the
// executable's code against the file given (read directly, not through
// the image: nothing is cached from a file that may be rejected). The
// real program's return addresses follow call instructions, all but a
// few the runtime plants (runtime.goexit+1 below every goroutine, the
// signal trampoline's restorer); another program's code at those
// addresses almost never has a call there. Go keeps frame pointers on
// amd64 and arm64; chains through C code built without them wander off
// into stack or heap addresses, which are skipped. It returns "" when the
// binary's code agrees (or too few addresses were found to judge), else
// what disagrees.
func (p *Process) checkCallSites(exe *Image, file io.ReaderAt) string {
	checked, nbad := 0, 0
	first := ""
	for _, t := range p.Threads {
		fp := t.Regs.FP()
		for depth := 0; depth < 64 && fp != 0 && checked < maxFPChecked; depth++ {
			ra, err1 := p.ReadUint64(fp + 8)
			next, err2 := p.ReadUint64(fp)
			if err1 != nil || err2 != nil {
				break
			}
			for _, m := range exe.Mappings {
				if !m.Contains(ra) || m.Perm&PermExec == 0 || ra-m.Start < 7 {
					continue
				}
				var b [7]byte
				if _, err := file.ReadAt(b[:], int64(m.Offset+(ra-7-m.Start))); err != nil {
					break
				}
				checked++
				if !followsCall(p.Arch, b) {
					nbad++
					if first == "" {
						first = fmt.Sprintf("%#x, saved at %#x on thread %d's stack", ra, fp+8, t.TID)
					}
				}
			}
			if next <= fp {
				break
			}
			fp = next
		}
	}
	if checked < minFPChecked || 2*nbad <= checked {
		return ""
	}
	return fmt.Sprintf("%d of the %d return addresses on the threads' stacks that lie in its code follow no call instruction there (first %s)", nbad, checked, first)
}
