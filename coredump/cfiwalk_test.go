package coredump

import "testing"

func TestCFIWalkBounds(t *testing.T) {
	regs := func(pc, sp uint64) *DwarfRegs {
		d := &DwarfRegs{Arch: ArchAMD64}
		d.SetPC(pc)
		d.SetSP(sp)
		return d
	}
	w := (&Process{}).WalkCFI(regs(0x1000, 0x7000), true, 3)
	if !w.Next() || !w.Exact() {
		t.Fatal("the first frame is not visited")
	}
	w.Resume(regs(0x1000, 0x7000), false)
	if w.Next() {
		t.Error("a frame visited twice: the walk loops")
	}
	w = (&Process{}).WalkCFI(regs(0x1000, 0x7000), true, 2)
	w.Next()
	w.Resume(regs(0x2000, 0x7010), false)
	if !w.Next() {
		t.Fatal("the second frame is not visited")
	}
	w.Resume(regs(0x3000, 0x7020), false)
	if w.Next() {
		t.Error("a third frame visited with max 2")
	}
	w = (&Process{}).WalkCFI(regs(0, 0x7000), true, 2)
	if w.Next() {
		t.Error("a frame with pc 0 visited")
	}
}
