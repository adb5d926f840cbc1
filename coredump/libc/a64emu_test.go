package libc

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
)

// This machine produces no arm64 cores, so the arm64 emulator runs on a
// synthetic one: an ELF core with one thread (NT_PRSTATUS, NT_ARM_TLS)
// and two segments, code and data, laid out as glibc's and musl's
// __errno_location are on arm64.
const (
	a64Code = 0x400000
	a64Data = 0x410000
	a64TP   = 0x7f0000001000
	a64Pid  = 4242
)

type segment struct {
	vaddr uint64
	flags elf.ProgFlag
	data  []byte
}

func note(name string, typ uint32, desc []byte) []byte {
	var b bytes.Buffer
	w := func(v uint32) { binary.Write(&b, binary.LittleEndian, v) }
	w(uint32(len(name) + 1))
	w(uint32(len(desc)))
	w(typ)
	b.WriteString(name + "\x00")
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	b.Write(desc)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

// writeCore writes an arm64 core with the given segments and a thread
// whose tpidr_el0 is a64TP.
func writeCore(t *testing.T, segs []segment) *coredump.Process {
	t.Helper()
	dir := t.TempDir()
	prstatus := make([]byte, 112+34*8+8)
	binary.LittleEndian.PutUint32(prstatus[32:], a64Pid)
	tls := make([]byte, 8)
	binary.LittleEndian.PutUint64(tls, a64TP)
	notes := append(note("CORE", uint32(coredump.NT_PRSTATUS), prstatus), note("LINUX", uint32(coredump.NT_ARM_TLS), tls)...)

	var f bytes.Buffer
	le := binary.LittleEndian
	nph := 1 + len(segs)
	hdr := elf.Header64{Type: uint16(elf.ET_CORE), Machine: uint16(elf.EM_AARCH64), Version: 1,
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: uint16(nph)}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	binary.Write(&f, le, hdr)
	off := uint64(64 + 56*nph)
	phs := []elf.Prog64{{Type: uint32(elf.PT_NOTE), Off: off, Filesz: uint64(len(notes))}}
	off += uint64(len(notes))
	for _, s := range segs {
		phs = append(phs, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(s.flags), Off: off, Vaddr: s.vaddr,
			Filesz: uint64(len(s.data)), Memsz: uint64(len(s.data)), Align: 0x1000})
		off += uint64(len(s.data))
	}
	for _, ph := range phs {
		binary.Write(&f, le, ph)
	}
	f.Write(notes)
	for _, s := range segs {
		f.Write(s.data)
	}
	core := filepath.Join(dir, "core")
	if err := os.WriteFile(core, f.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// An executable header for the same machine, which Open checks.
	var exe bytes.Buffer
	eh := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_AARCH64), Version: 1, Ehsize: 64, Phentsize: 56}
	copy(eh.Ident[:], elf.ELFMAG)
	eh.Ident[elf.EI_CLASS], eh.Ident[elf.EI_DATA], eh.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	binary.Write(&exe, le, eh)
	exePath := filepath.Join(dir, "exe")
	if err := os.WriteFile(exePath, exe.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := coredump.Open(core, exePath, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if len(p.Threads) != 1 || p.Threads[0].TP() != a64TP || p.Arch != coredump.ArchARM64 {
		t.Fatalf("synthetic core: %d threads, tp %#x, %s", len(p.Threads), p.Threads[0].TP(), p.Arch)
	}
	return p
}

func words(ws ...uint32) []byte {
	b := make([]byte, 4*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

func newTestRuntime(p *coredump.Process) *Runtime {
	return &Runtime{Proc: p, Arch: p.Arch, elfs: map[*coredump.Image]*elfInfo{}, unwind: map[int][]Frame{},
		cranges: map[*coredump.Image]*cRanges{}}
}

func TestEmulateARM64(t *testing.T) {
	// glibc: mrs x0, tpidr_el0; adrp x1, GOT page; ldr x1, [x1, #0x18];
	// add x0, x0, x1; ret. The GOT slot holds errno's TPREL offset 0x10.
	glibc := words(
		0xd503245f,              // bti c
		0xd53bd040,              // mrs x0, tpidr_el0
		0x90000001|4<<5,         // adrp x1, a64Data: 16 pages on, immlo 0, immhi 4
		0xf9400021|(0x18/8)<<10, // ldr x1, [x1, #0x18]
		0x8b010000,              // add x0, x0, x1
		0xd65f03c0,              // ret
	)
	// musl: b to the body; mrs x0, tpidr_el0; sub x0, x0, #0x8c; ret
	// (errno_val at 0x24 of a 0xb0-byte struct pthread ending at tp).
	musl := words(
		0x14000002,          // b .+8
		0xd4200000,          // brk #0 (skipped)
		0xd53bd040,          // mrs x0, tpidr_el0
		0xd1000000|0x8c<<10, // sub x0, x0, #0x8c
		0xd65f03c0,          // ret
	)
	code := make([]byte, 0x100)
	copy(code, glibc)
	copy(code[0x80:], musl)
	data := make([]byte, 0x100)
	binary.LittleEndian.PutUint64(data[0x18:], 0x10)
	p := writeCore(t, []segment{{a64Code, elf.PF_R | elf.PF_X, code}, {a64Data, elf.PF_R | elf.PF_W, data}})
	r := newTestRuntime(p)

	res, err := r.emulateARM64(a64Code, a64TP)
	if err != nil || res.value != a64TP+0x10 || res.got != a64Data+0x18 || res.gotValue != 0x10 {
		t.Errorf("glibc shape: %+v, %v; want tp+0x10 through the GOT slot %#x", res, err, a64Data+0x18)
	}
	res, err = r.emulateARM64(a64Code+0x80, a64TP)
	if err != nil || res.value != a64TP-0x8c || res.got != 0 {
		t.Errorf("musl shape: %+v, %v; want tp-0x8c", res, err)
	}
	// An instruction the emulator does not know stops it with an error
	// that names it.
	if _, err := r.emulateARM64(a64Code+0x84, a64TP); err == nil {
		t.Errorf("brk #0 was not rejected")
	}
}
