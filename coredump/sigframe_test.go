package coredump

import (
	"encoding/binary"
	"strings"
	"testing"
)

// putSigInfo writes a SIGSEGV/SEGV_MAPERR siginfo for address addr.
func putSigInfo(b []byte, addr uint64) {
	binary.LittleEndian.PutUint32(b[0:], uint32(SIGSEGV))
	binary.LittleEndian.PutUint32(b[8:], 1) // SEGV_MAPERR
	binary.LittleEndian.PutUint64(b[16:], addr)
}

func TestDecodeSignalFrameAMD64(t *testing.T) {
	b := make([]byte, SignalFrameSize(ArchAMD64))
	le := binary.LittleEndian
	le.PutUint64(b[0:], 0x401000) // pretcode
	uc := b[8:]
	le.PutUint64(uc[16:], 0xc000100000) // uc_stack.ss_sp
	le.PutUint32(uc[24:], 0)
	le.PutUint64(uc[32:], 0x8000)
	mc := uc[40:]
	for w := range 18 { // r8 .. eflags: word w holds 0x100+w
		le.PutUint64(mc[8*w:], 0x100+uint64(w))
	}
	le.PutUint16(mc[8*18:], 0x33)   // cs
	le.PutUint16(mc[8*18+6:], 0x2b) // ss
	le.PutUint64(mc[8*19:], 4)      // err: user-mode read
	le.PutUint64(mc[8*20:], 14)     // trapno: #PF
	le.PutUint64(mc[8*22:], 0xdead) // cr2
	putSigInfo(b[8+304:], 0xdead)

	sf, err := DecodeSignalFrame(ArchAMD64, 0x7000, b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"r8": 0x100, "r15": 0x107, "rdi": 0x108, "rsi": 0x109, "rbp": 0x10a, "rbx": 0x10b,
		"rdx": 0x10c, "rax": 0x10d, "rcx": 0x10e, "rsp": 0x10f, "rip": 0x110, "eflags": 0x111, "cs": 0x33, "ss": 0x2b,
		"orig_rax": 0, "fs_base": 0}
	for n, v := range want {
		if got, _ := sf.Regs.Get(n); got != v {
			t.Errorf("%s = %#x, want %#x", n, got, v)
		}
	}
	if sf.Addr != 0x7000 || sf.PC() != 0x110 || sf.SP() != 0x10f || sf.Info.Signo != SIGSEGV || sf.Info.Addr != 0xdead {
		t.Errorf("frame %+v, info %+v", sf, sf.Info)
	}
	if !sf.HasTrap || sf.Trapno != 14 || sf.ErrCode != 4 || sf.CR2 != 0xdead {
		t.Errorf("trap %v %d %d %#x", sf.HasTrap, sf.Trapno, sf.ErrCode, sf.CR2)
	}
	if sf.Stack != (SignalStack{SP: 0xc000100000, Size: 0x8000}) {
		t.Errorf("uc_stack %+v", sf.Stack)
	}
	named := sf.Named()
	if len(named) != 21 || named["rip"] != 0x110 || named["trapno"] != 14 || named["cr2"] != 0xdead {
		t.Errorf("named registers %v", named)
	}
	d := sf.DwarfRegs()
	if d.PC() != 0x110 || d.SP() != 0x10f || d.FP() != 0x10a {
		t.Errorf("dwarf pc %#x sp %#x fp %#x", d.PC(), d.SP(), d.FP())
	}
	if _, ok := d.Get(58); ok {
		t.Error("fs_base is known, but the frame does not hold it")
	}
	if got := SignalFrameAtRestorer(ArchAMD64, 0x7008); got != 0x7000 {
		t.Errorf("frame of the restorer at sp 0x7008: %#x", got)
	}
}

func TestDecodeSignalFrameARM64(t *testing.T) {
	b := make([]byte, SignalFrameSize(ArchARM64))
	le := binary.LittleEndian
	putSigInfo(b, 0xbad0)
	uc := b[128:]
	le.PutUint64(uc[16:], 0x4000000) // uc_stack.ss_sp
	le.PutUint64(uc[32:], 0x10000)
	sc := uc[176:]
	le.PutUint64(sc, 0xbad0) // fault_address
	for i := range 34 {      // x0..x30, sp, pc, pstate
		le.PutUint64(sc[8+8*i:], 0x1000+uint64(i))
	}
	sf, err := DecodeSignalFrame(ArchARM64, 0xffff0000, b)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := sf.Regs.Get("x0"); v != 0x1000 {
		t.Errorf("x0 = %#x", v)
	}
	if v, _ := sf.Regs.Get("x29"); v != 0x1000+29 {
		t.Errorf("x29 = %#x", v)
	}
	if sf.SP() != 0x1000+31 || sf.PC() != 0x1000+32 || sf.FaultAddress != 0xbad0 || sf.HasTrap {
		t.Errorf("sp %#x pc %#x fault_address %#x", sf.SP(), sf.PC(), sf.FaultAddress)
	}
	if v, _ := sf.Regs.Get("pstate"); v != 0x1000+33 {
		t.Errorf("pstate = %#x", v)
	}
	if sf.Info.Signo != SIGSEGV || sf.Info.Addr != 0xbad0 || sf.Stack.SP != 0x4000000 || sf.Stack.Size != 0x10000 {
		t.Errorf("info %+v stack %+v", sf.Info, sf.Stack)
	}
	if got := SignalFrameAtRestorer(ArchARM64, 0xffff0000); got != 0xffff0000 {
		t.Errorf("frame of the restorer at sp 0xffff0000: %#x", got)
	}
}

func TestDecodeSignalFrameRejects(t *testing.T) {
	b := make([]byte, SignalFrameSize(ArchAMD64))
	if _, err := DecodeSignalFrame(ArchAMD64, 0x7000, b); err == nil || !strings.Contains(err.Error(), "signal number 0") {
		t.Errorf("zero frame: %v", err)
	}
	putSigInfo(b[8+304:], 0)
	if _, err := DecodeSignalFrame(ArchAMD64, 0x7000, b); err == nil || !strings.Contains(err.Error(), "pc 0x0") {
		t.Errorf("frame with pc 0: %v", err)
	}
	if _, err := DecodeSignalFrame(ArchAMD64, 0x7000, b[:100]); err == nil {
		t.Error("short frame decoded")
	}
}
