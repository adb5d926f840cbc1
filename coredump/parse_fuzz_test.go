package coredump

// Fuzz targets for the parsers of the core's own bytes: notes and their
// decoders, ELF headers, and the address space built from program headers.
// `go test` runs the seeds (synthetic ones and ones cut from the fixture
// cores at test time); `go test -fuzz=FuzzNotes ./coredump` and friends
// search further. Every target checks invariants, not just "no panic".

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

// fixtureCores are the cores the seeds are cut from: a pure Go re-raise, a
// cgo crash and a C program.
var fixtureCores = []string{"go-nil-field", "cgo-null-write", "c-segv"}

// seedCores returns the fixture cores' paths, or none when fixtures cannot
// be built here (the synthetic seeds still run).
func seedCores(tb testing.TB) []string {
	tb.Helper()
	var out []string
	for _, name := range fixtureCores {
		out = append(out, FixtureCore(tb, name))
	}
	return out
}

// coreNotes returns the note segments of a core file.
func coreNotes(tb testing.TB, path string) [][]byte {
	tb.Helper()
	ef, err := elf.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer ef.Close()
	var out [][]byte
	for _, ph := range ef.Progs {
		if ph.Type == elf.PT_NOTE {
			b := make([]byte, ph.Filesz)
			if _, err := ph.ReadAt(b, 0); err != nil {
				tb.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

func mkNote(name string, typ NoteType, desc []byte) []byte {
	var b bytes.Buffer
	nm := append([]byte(name), 0)
	binary.Write(&b, le, uint32(len(nm)))
	binary.Write(&b, le, uint32(len(desc)))
	binary.Write(&b, le, uint32(typ))
	b.Write(nm)
	b.Write(make([]byte, align4(len(nm))-len(nm)))
	b.Write(desc)
	b.Write(make([]byte, align4(len(desc))-len(desc)))
	return b.Bytes()
}

// notesByType splits the fixture notes by type, for the decoder seeds.
func notesByType(tb testing.TB) map[NoteType][][]byte {
	out := map[NoteType][][]byte{}
	for _, core := range seedCores(tb) {
		for _, seg := range coreNotes(tb, core) {
			notes, err := parseNotes(seg, 0)
			if err != nil {
				tb.Fatal(err)
			}
			for _, n := range notes {
				if len(out[n.Type]) < 3 {
					out[n.Type] = append(out[n.Type], n.Desc)
				}
			}
		}
	}
	return out
}

func FuzzNotes(f *testing.F) {
	for _, core := range seedCores(f) {
		for _, seg := range coreNotes(f, core) {
			f.Add(seg)
		}
	}
	f.Add(mkNote("CORE", NT_PRSTATUS, make([]byte, 336)))
	f.Add(append(mkNote("CORE", NT_FILE, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 16}), mkNote("LINUX", NT_ARM_TLS, make([]byte, 8))...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		notes, err := parseNotes(b, 0)
		total := 0
		for _, n := range notes {
			if n.Off < 0 || n.Off+12 > int64(len(b)) || len(n.Desc) > len(b) {
				t.Fatalf("note at %d with %d-byte desc outside %d bytes", n.Off, len(n.Desc), len(b))
			}
			total += 12 + len(n.Desc)
		}
		if total > len(b) {
			t.Fatalf("notes claim %d bytes of %d", total, len(b))
		}
		if err == nil && len(notes) == 0 && len(b) >= 12 {
			t.Fatalf("%d bytes parsed to no note and no error", len(b))
		}
		for _, arch := range []Arch{ArchAMD64, ArchARM64} {
			p := &Process{Arch: arch}
			if err := p.applyNotes(notes); err != nil {
				t.Fatal(err)
			}
			for _, th := range p.Threads {
				if len(th.Regs.Values) != regCount(arch) {
					t.Fatalf("%s thread with %d registers", arch, len(th.Regs.Values))
				}
				th.Regs.PC()
				th.Regs.DwarfRegs()
				NewDwarfRegs(th.Regs)
			}
			if p.Signal != nil {
				p.Signal.CodeName()
				_ = p.Signal.Signo.String()
			}
			for _, fm := range p.Files {
				if bytes.IndexByte([]byte(fm.Path), 0) >= 0 {
					t.Fatalf("NT_FILE path with a NUL: %q", fm.Path)
				}
			}
		}
	})
}

func FuzzNTFile(f *testing.F) {
	for _, d := range notesByType(f)[NT_FILE] {
		f.Add(d)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0x10, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, d []byte) {
		files, err := decodeNTFile(d)
		if len(d) >= 16 && len(files) > (len(d)-16)/24 {
			t.Fatalf("%d entries from %d bytes", len(files), len(d))
		}
		if err == nil && len(d) >= 16 && uint64(len(files)) != le.Uint64(d) {
			t.Fatalf("%d entries decoded without error, header says %d", len(files), le.Uint64(d))
		}
	})
}

func FuzzPRStatus(f *testing.F) {
	for _, d := range notesByType(f)[NT_PRSTATUS] {
		f.Add(d)
	}
	f.Add(make([]byte, 111))
	f.Add(make([]byte, 112+34*8))
	f.Fuzz(func(t *testing.T, d []byte) {
		for _, arch := range []Arch{ArchAMD64, ArchARM64, ArchUnknown} {
			th, err := decodePRStatus(arch, d)
			if err != nil {
				continue
			}
			if len(th.Regs.Values) != regCount(arch) {
				t.Fatalf("%d registers for %s", len(th.Regs.Values), arch)
			}
			if arch == ArchAMD64 && th.TP() != le.Uint64(d[prstatusReg+8*amd64FSBase:]) {
				t.Fatal("fs_base not the thread pointer")
			}
			_ = th.Regs.Names()
			th.Regs.Get("rip")
			th.Regs.Get("tp")
		}
	})
}

func FuzzSigInfo(f *testing.F) {
	for _, d := range notesByType(f)[NT_SIGINFO] {
		f.Add(d)
	}
	f.Add(make([]byte, 31))
	f.Add(make([]byte, 128))
	f.Fuzz(func(t *testing.T, d []byte) {
		si, err := decodeSigInfo(d)
		if (err != nil) != (len(d) < 32) {
			t.Fatalf("%d bytes: err %v", len(d), err)
		}
		if si == nil {
			return
		}
		si.CodeName()
		_ = si.Signo.String()
		si.Signo.Description()
		if si.HasAddr() && si.PID != 0 {
			t.Fatal("a fault with a sender")
		}
	})
}

func FuzzELFHeader(f *testing.F) {
	for _, core := range seedCores(f) {
		// The core's own header and the first page of every image it
		// holds (what loadImages parses), plus the binaries on disk.
		b, err := os.ReadFile(core)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 4096)])
		ef, err := elf.Open(core)
		if err != nil {
			f.Fatal(err)
		}
		for _, ph := range ef.Progs {
			if ph.Type == elf.PT_LOAD && ph.Filesz >= 4096 && bytes.HasPrefix(b[ph.Off:], []byte(elf.ELFMAG)) {
				f.Add(b[ph.Off : ph.Off+4096])
			}
		}
		ef.Close()
	}
	f.Add([]byte(elf.ELFMAG + "\x02\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseELFHeader(b)
		if err != nil {
			return
		}
		if len(h.Progs) > maxProgHeaders {
			t.Fatalf("%d program headers", len(h.Progs))
		}
		ids := buildIDsFromNotes(h, bytes.NewReader(b), false)
		_ = ids.String()
		ids2 := buildIDsFromNotes(h, bytes.NewReader(b), true)
		_, _ = ids.Same(ids2) // only for its panics: Same must not crash on any notes
		firstLoadVaddr(h)
	})
}

// FuzzAddressSpace builds an address space from random program headers over
// a core file of known bytes and checks every read against a byte-by-byte
// model: the bytes returned, how many, and why the rest could not be read.
func FuzzAddressSpace(f *testing.F) {
	f.Add(spaceSeed(0x1000, 0x2000, 0, 0x2000), uint64(0x1ff0), uint16(64), uint32(0x1800))
	f.Add(spaceSeed(0x1000, 0x4000, 0x100, 0x1000, 0x5000, 0x1000, 0x1100, 0x1000), uint64(0x1000), uint16(0x8000), uint32(0x1500))
	f.Add(spaceSeed(0xfffffffffffff000, 0x1000, 0, 0x1000), uint64(0xffffffffffffff00), uint16(0x200), uint32(0x2000))
	f.Fuzz(func(t *testing.T, layout []byte, addr uint64, n uint16, size uint32) {
		size %= 1 << 16
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + i>>8)
		}
		p := &Process{Arch: ArchAMD64}
		p.loadMappings(decodeLayout(layout), int64(size))
		p.src = &coreMemory{data: data, size: int64(size), p: p}
		if size == 0 {
			p.src.(*coreMemory).data = nil
		}
		for i := 1; i < len(p.Mappings); i++ {
			if p.Mappings[i].Start < p.Mappings[i-1].End {
				t.Fatalf("overlapping mappings %v %v", p.Mappings[i-1], p.Mappings[i])
			}
		}
		buf := make([]byte, n)
		got, err := p.ReadMemory(buf, addr)
		want, reason := modelRead(p, data, addr, int(n))
		if got != len(want) {
			t.Fatalf("ReadMemory(%#x, %d) read %d bytes (%v), the model %d (%v)", addr, n, got, err, len(want), reason)
		}
		if !bytes.Equal(buf[:got], want) {
			t.Fatalf("ReadMemory(%#x, %d): wrong bytes", addr, n)
		}
		if got < int(n) {
			me, ok := AsMemoryError(err)
			if !ok || me.Reason != reason || me.Addr != addr+uint64(got) {
				t.Fatalf("ReadMemory(%#x, %d) after %d bytes: %v, the model says %v", addr, n, got, err, reason)
			}
		} else if err != nil {
			t.Fatalf("full read with error %v", err)
		}
		if r := p.Readable(addr, uint64(n)); r != (got == int(n)) && addr+uint64(n) >= addr {
			t.Fatalf("Readable(%#x, %d) = %v, but ReadMemory read %d", addr, n, r, got)
		}
		s, ok, err := p.ReadCString(addr, int(n))
		if len(s) > int(n) || (ok && err != nil) || !bytes.HasPrefix(want, []byte(s)) {
			t.Fatalf("ReadCString(%#x, %d) = %q %v %v", addr, n, s, ok, err)
		}
		if _, err := p.ReadAt(buf, int64(addr)); int64(addr) < 0 && err == nil {
			t.Fatal("ReadAt at a negative offset succeeded")
		}
	})
}

// spaceSeed encodes (vaddr, memsz, off, filesz) quadruples as decodeLayout
// reads them.
func spaceSeed(v ...uint64) []byte {
	var b []byte
	for i := 0; i+3 < len(v); i += 4 {
		b = le.AppendUint64(b, v[i])
		b = le.AppendUint32(b, uint32(v[i+1]))
		b = le.AppendUint32(b, uint32(v[i+2]))
		b = le.AppendUint32(b, uint32(v[i+3]))
		b = append(b, byte(elf.PF_R|elf.PF_W))
	}
	return b
}

// decodeLayout reads program headers from fuzz bytes, 21 bytes each.
func decodeLayout(b []byte) []elf.ProgHeader {
	var out []elf.ProgHeader
	for ; len(b) >= 21 && len(out) < 64; b = b[21:] {
		out = append(out, elf.ProgHeader{Type: elf.PT_LOAD, Vaddr: le.Uint64(b), Memsz: uint64(le.Uint32(b[8:])),
			Off: uint64(le.Uint32(b[12:])), Filesz: uint64(le.Uint32(b[16:])), Flags: elf.ProgFlag(b[20] & 7)})
	}
	return out
}

// modelRead is what ReadMemory must return, computed one byte at a time.
func modelRead(p *Process, data []byte, addr uint64, n int) ([]byte, Unreadable) {
	var out []byte
	for i := 0; i < n; i++ {
		a := addr + uint64(i)
		if a < addr {
			return out, NotMapped
		}
		var m *Mapping
		for _, x := range p.Mappings {
			if x.Start <= a && a < x.End {
				m = x
			}
		}
		if m == nil {
			return out, NotMapped
		}
		off := a - m.Start
		switch {
		case off < m.Dumped && uint64(m.coreOff)+off < uint64(len(data)):
			out = append(out, data[uint64(m.coreOff)+off])
		case off < m.Dumped:
			return out, Truncated
		default:
			return out, NotDumped
		}
	}
	return out, 0
}

// A read that runs into the cut of a truncated core returns the bytes
// before the cut.
func TestReadUpToTruncation(t *testing.T) {
	p := &Process{Arch: ArchAMD64}
	data := bytes.Repeat([]byte{0xab}, 0x1800)
	p.loadMappings([]elf.ProgHeader{{Type: elf.PT_LOAD, Vaddr: 0x10000, Memsz: 0x2000, Off: 0, Filesz: 0x2000}}, int64(len(data)))
	p.src = &coreMemory{data: data, size: int64(len(data)), p: p}
	buf := make([]byte, 0x100)
	n, err := p.ReadMemory(buf, 0x10000+0x1780)
	me, ok := AsMemoryError(err)
	if n != 0x80 || !ok || me.Reason != Truncated || me.Addr != 0x11800 || buf[0x7f] != 0xab {
		t.Fatalf("read across the cut: n=%#x err=%v last byte %#x", n, err, buf[0x7f])
	}
	if p.Truncation == nil || p.Truncation.MissingBytes() != 0x800 || len(p.Truncation.Segments) != 1 {
		t.Fatalf("truncation %+v", p.Truncation)
	}
	var mis *MemoryError
	if !errors.As(err, &mis) {
		t.Fatal("not a *MemoryError")
	}
}

// FuzzCFI parses call frame information as the vDSO's (read from the core,
// so hostile) is parsed, and evaluates the frame of every pc it covers.
func FuzzCFI(f *testing.F) {
	for _, core := range seedCores(f)[:1] {
		p, err := Open(core, "", Options{})
		if err != nil {
			f.Fatal(err)
		}
		for _, im := range p.Images {
			if _, data, err := im.Section(".eh_frame"); err == nil && len(data) < 1<<16 {
				f.Add(data)
			}
		}
		p.Close()
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fdes, err := parseCFI(data, 0x1000, 0x2000)
		if err != nil {
			return
		}
		for i, fde := range fdes {
			if i == 64 {
				break
			}
			establishFrame(fde, fde.Begin())
			establishFrame(fde, fde.End()-1)
		}
	})
}

// Paths the core names are looked up inside the sysroot, whatever "../"
// they hold.
func TestHostPathStaysInSysroot(t *testing.T) {
	p := &Process{Sysroot: "/srv/root"}
	for in, want := range map[string]string{
		"/lib/libc.so.6":            "/srv/root/lib/libc.so.6",
		"/../../../etc/shadow":      "/srv/root/etc/shadow",
		"lib/../../../x":            "/srv/root/x",
		"/usr/bin/server (deleted)": "/srv/root/usr/bin/server",
		"/a/./b//c/../libfoo.so":    "/srv/root/a/b/libfoo.so",
	} {
		if got := p.hostPath(in); got != want {
			t.Errorf("hostPath(%q) = %q, want %q", in, got, want)
		}
	}
	if got := (&Process{}).hostPath("/lib/libc.so.6 (deleted)"); got != "/lib/libc.so.6" {
		t.Errorf("without a sysroot: %q", got)
	}
}
