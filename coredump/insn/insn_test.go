package insn_test

import (
	"debug/elf"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/insn"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		code              []byte
		op, mem           string
		access            insn.Access
		size              int
		trap, div, vector bool
		align             int
		target            string
	}{
		{code: []byte{0x48, 0x8b, 0x81, 0x80, 0, 0, 0}, op: "mov", mem: "[rcx+0x80]", access: insn.AccessRead, size: 8},
		{code: []byte{0x89, 0x37}, op: "mov", mem: "[rdi]", access: insn.AccessWrite, size: 4},
		{code: []byte{0x80, 0x2f, 0x20}, op: "sub", mem: "[rdi]", access: insn.AccessWrite, size: 1},
		{code: []byte{0x80, 0x3f, 0x00}, op: "cmp", mem: "[rdi]", access: insn.AccessRead, size: 1},
		{code: []byte{0x0f, 0x0b}, op: "ud2", trap: true},
		{code: []byte{0xf7, 0xf1}, op: "div", div: true},
		{code: []byte{0x0f, 0x29, 0x04, 0x24}, op: "movaps", mem: "[rsp]", access: insn.AccessWrite, size: 16, align: 16},
		{code: []byte{0xc5, 0xfd, 0x6f, 0x07}, op: "vmovdqa", mem: "[rdi]", access: insn.AccessRead, size: 32, vector: true, align: 32},
		{code: []byte{0xff, 0xd0}, op: "call", target: "rax"},
		{code: []byte{0xff, 0x53, 0x10}, op: "call", mem: "[rbx+0x10]", access: insn.AccessRead, size: 8},
	} {
		in, err := insn.Decode(coredump.ArchAMD64, tc.code, 0x1000)
		if err != nil {
			t.Errorf("% x: %v", tc.code, err)
			continue
		}
		mem := ""
		size := 0
		if in.Mem != nil {
			mem, size = in.Mem.String(), in.Mem.Size
		}
		if (tc.op != "" && in.Op != tc.op) || mem != tc.mem || in.Access != tc.access || size != tc.size || in.Trap != tc.trap ||
			in.Divide != tc.div || (in.Vector != "") != tc.vector || in.AlignRequired != tc.align || in.Target != tc.target {
			t.Errorf("% x: %+v mem %s", tc.code, in, mem)
		}
	}
}

// textOf opens a fixture binary and returns its .text as Code and its
// function symbols.
func textOf(t *testing.T, name string) (*insn.Code, []elf.Symbol) {
	t.Helper()
	c := fixturetest.MustCrash(t, name, fixtures.Default)
	f, err := elf.Open(c.Binary)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	text := f.Section(".text")
	if text == nil {
		t.Fatal("no .text")
	}
	b, err := text.Data()
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	return &insn.Code{Arch: coredump.ArchAMD64, PC: text.Addr, Bytes: b}, syms
}

// sub is the Code of [start, end) of c.
func sub(c *insn.Code, start, end uint64) *insn.Code {
	return &insn.Code{Arch: c.Arch, PC: start, Bytes: c.Bytes[start-c.PC : end-c.PC]}
}

// The sweep over main.main of cgo-errno-threads finds a call of every cgo
// wrapper the source calls (C.start_c_threads, C.wait_ready,
// C.fail_request; C.block_with_errno is called from a closure), and every
// direct call in main's functions lands on the entry of a function the
// symbol table names: the sweep stays on instruction boundaries.
func TestSweepCalls(t *testing.T) {
	text, syms := textOf(t, "cgo-errno-threads")
	entry := map[uint64]string{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			entry[s.Value] = strings.TrimSuffix(s.Name, ".abi0") // assembly ABI wrappers
		}
	}
	called := map[string]bool{}
	calls := 0
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || !strings.HasPrefix(s.Name, "main.") || s.Size == 0 {
			continue
		}
		for r := range sub(text, s.Value, s.Value+s.Size).Refs() {
			if r.Kind != insn.RefCall {
				continue
			}
			calls++
			name, ok := entry[r.Target]
			if !ok {
				t.Errorf("%s: call at %#x to %#x, no function's entry", s.Name, r.At, r.Target)
				continue
			}
			if s.Name == "main.main" {
				called[name] = true
			}
		}
	}
	for _, want := range []string{"main._Cfunc_start_c_threads", "main._Cfunc_wait_ready", "main._Cfunc_fail_request"} {
		if !called[want] {
			t.Errorf("main.main calls %s; the sweep found calls of %v", want, called)
		}
	}
	if calls < 10 {
		t.Errorf("%d calls in main's functions", calls)
	}
}

// A sweep through .text read from the binary file and one through the
// same bytes in memory agree, and ReadCode refuses a range over its limit
// before reading.
func TestReadCode(t *testing.T) {
	c := fixturetest.MustCrash(t, "cgo-errno-threads", fixtures.Default)
	f, err := elf.Open(c.Binary)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	text := f.Section(".text")
	r := readerAt{text}
	if _, err := insn.ReadCode(r, coredump.ArchAMD64, text.Addr, text.Addr+text.Size, 4096); err == nil || !strings.Contains(err.Error(), "limit") && !strings.Contains(err.Error(), "at most") {
		t.Errorf("all of .text with a 4096-byte limit: %v", err)
	}
	n := min(text.Size, 1<<16)
	code, err := insn.ReadCode(r, coredump.ArchAMD64, text.Addr, text.Addr+n, n)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := textOf(t, "cgo-errno-threads")
	var a, b []insn.Ref
	for x := range code.Refs() {
		a = append(a, x)
	}
	for x := range sub(full, text.Addr, text.Addr+n).Refs() {
		b = append(b, x)
	}
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%d refs from the file, %d from memory", len(a), len(b))
	}
	// Past the end of the section the read comes back short, with what it got.
	code, err = insn.ReadCode(r, coredump.ArchAMD64, text.Addr+text.Size-8, text.Addr+text.Size+8, 64)
	if err == nil || code == nil || len(code.Bytes) != 8 {
		t.Errorf("read across the end of .text: %v, %+v", err, code)
	}
}

type readerAt struct{ s *elf.Section }

func (r readerAt) ReadAt(b []byte, addr int64) (int, error) {
	return r.s.ReadAt(b, addr-int64(r.s.Addr))
}

// Garbage: every byte value, and bytes that never decode. The sweep ends,
// each instruction inside the code and after the one before.
func TestSweepGarbage(t *testing.T) {
	var b []byte
	for i := range 1 << 14 {
		b = append(b, byte(i*131+i>>8))
	}
	b = append(b, make([]byte, 64)...)
	for i := range 256 {
		b = append(b, 0x0f, 0xff, byte(i)) // 0f ff: UD0 with whatever modrm
	}
	for _, arch := range []coredump.Arch{coredump.ArchAMD64, coredump.ArchARM64, coredump.ArchUnknown} {
		c := &insn.Code{Arch: arch, PC: 0x1000, Bytes: b}
		last, n := uint64(0), 0
		for in := range c.Insts() {
			if in.PC < last || in.Len <= 0 || in.Next() > c.PC+uint64(len(b)) {
				t.Fatalf("%s: instruction %#x+%d after %#x", arch, in.PC, in.Len, last)
			}
			last = in.Next()
			n++
		}
		if n > len(b) {
			t.Errorf("%s: %d instructions in %d bytes", arch, n, len(b))
		}
		for range c.Refs() {
		}
	}
	var nilCode *insn.Code
	for range nilCode.Insts() {
		t.Fatal("a nil Code has instructions")
	}
}

// endbr64 is stepped over whole; the call after it is found.
func TestSweepEndbr64(t *testing.T) {
	c := &insn.Code{Arch: coredump.ArchAMD64, PC: 0x1000, Bytes: []byte{0xf3, 0x0f, 0x1e, 0xfa, 0xe8, 0x10, 0, 0, 0, 0xc3}}
	var pcs []uint64
	for in := range c.Insts() {
		pcs = append(pcs, in.PC)
	}
	if len(pcs) != 2 || pcs[0] != 0x1004 || pcs[1] != 0x1009 {
		t.Errorf("instructions at %#x", pcs)
	}
	for r := range c.Refs() {
		if r.Kind != insn.RefCall || r.At != 0x1004 || r.Target != 0x1009+0x10 {
			t.Errorf("ref %+v", r)
		}
	}
}

// arm64: ADRP x0, page; LDR x1, [x0, #16]; ADD x0, x0, #0x48; BL .+8;
// B .-16. The load and the ADD both complete the ADRP, the ADD ends it.
func TestSweepARM64(t *testing.T) {
	words := []uint32{
		0x90000020, // adrp x0, (pc&^0xfff) + 4<<12 (immhi=1, immlo=0)
		0xf9400801, // ldr x1, [x0, #16]
		0x91012000, // add x0, x0, #0x48
		0x94000002, // bl .+8
		0x17fffffc, // b .-16
	}
	var b []byte
	for _, w := range words {
		b = append(b, byte(w), byte(w>>8), byte(w>>16), byte(w>>24))
	}
	pc := uint64(0x400ff8)
	c := &insn.Code{Arch: coredump.ArchARM64, PC: pc, Bytes: b}
	page := (pc &^ 0xfff) + 4<<12 // pc is 8 bytes below a page: the ADRP counts from its own page
	want := []insn.Ref{
		{At: pc, Target: page + 16, Kind: insn.RefLoad, Size: 8},
		{At: pc, Target: page + 0x48, Kind: insn.RefAddr},
		{At: pc + 12, Target: pc + 12 + 8, Kind: insn.RefCall},
		{At: pc + 16, Target: pc + 16 - 16, Kind: insn.RefJump},
	}
	var got []insn.Ref
	for r := range c.Refs() {
		got = append(got, r)
	}
	if len(got) != len(want) {
		t.Fatalf("refs %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("ref %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
