package coredump_test

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/report"
)

// buildSysroot copies every ELF file the core maps (the executable and its
// libraries) under a new directory at the path the core names, as a
// container's root filesystem holds them. edit, when not nil, may change a
// copy before it is written.
func buildSysroot(t *testing.T, p *coredump.Process, edit func(path string, b []byte) []byte) string {
	t.Helper()
	root := t.TempDir()
	for _, im := range p.Images {
		if im.HostPath == "" || strings.HasPrefix(im.Path, "[") {
			continue
		}
		b, err := os.ReadFile(im.HostPath)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			b = edit(im.Path, b)
		}
		dst := filepath.Join(root, im.Path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// changeBuildID flips the first byte of the GNU build ID of an ELF file.
func changeBuildID(t *testing.T, b []byte) (out []byte, oldID, newID string) {
	t.Helper()
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	s := ef.Section(".note.gnu.build-id")
	if s == nil {
		t.Fatal("no .note.gnu.build-id")
	}
	desc := int(s.Offset) + 16 // 12-byte note header, "GNU\0"
	size := int(s.Size) - 16
	out = append([]byte(nil), b...)
	oldID = hex.EncodeToString(out[desc : desc+size])
	out[desc] ^= 0xff
	newID = hex.EncodeToString(out[desc : desc+size])
	return out, oldID, newID
}

// With --sysroot, the executable and libraries are found under it; a
// library there whose build ID differs is listed with both IDs and never
// read from; one missing there is listed as missing.
func TestSysroot(t *testing.T) {
	c := crash(t, "cgo-null-write")
	host := open(t, c.Core, c.Binary)
	libc := host.ImageByName("libc.so")
	if libc == nil || libc.Status != coredump.ImageVerified {
		t.Fatalf("libc on this machine: %+v", libc)
	}
	libcPath := libc.Path
	errnoLoc, ok := libc.LookupSymbol("__errno_location")
	if !ok {
		t.Fatal("no __errno_location")
	}
	want := make([]byte, 16)
	if _, err := host.ReadMemory(want, errnoLoc.Addr); err != nil {
		t.Fatal(err)
	}

	// A faithful copy: everything, the executable included, comes from
	// the sysroot.
	root := buildSysroot(t, host, nil)
	p, err := coredump.Open(c.Core, "", coredump.Options{Sysroot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Exe == nil || p.Exe.HostPath != filepath.Join(root, p.Exe.Path) || p.Exe.Status != coredump.ImageVerified {
		t.Fatalf("executable under the sysroot: %+v", p.Exe)
	}
	for _, im := range p.Images {
		if im.Path == "[vdso]" {
			continue
		}
		if im.Status != coredump.ImageVerified || !strings.HasPrefix(im.HostPath, root+"/") {
			t.Errorf("%s: %s from %q", im.Path, im.Status, im.HostPath)
		}
	}
	got := make([]byte, 16)
	if _, err := p.ReadMemory(got, errnoLoc.Addr); err != nil || !bytes.Equal(got, want) {
		t.Errorf("libc code from the sysroot: % x, %v; want % x", got, err, want)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings with a faithful sysroot: %q", p.Warnings)
	}

	// A libc whose build ID differs: refused, named with both IDs.
	var coreID, fileID string
	bad := buildSysroot(t, host, func(path string, b []byte) []byte {
		if path != libcPath {
			return b
		}
		out, oldID, newID := changeBuildID(t, b)
		coreID, fileID = oldID, newID
		return out
	})
	q, err := coredump.Open(c.Core, "", coredump.Options{Sysroot: bad})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ql := q.ImageByName("libc.so")
	if ql.Status != coredump.ImageMismatch || ql.CoreIDs.GNU != coreID || ql.FileIDs.GNU != fileID {
		t.Fatalf("modified libc: %s, core %s, file %s; want mismatch %s vs %s", ql.Status, ql.CoreIDs, ql.FileIDs, coreID, fileID)
	}
	_, err = q.ReadMemory(got, errnoLoc.Addr)
	if me, ok := coredump.AsMemoryError(err); !ok || me.Reason != coredump.FileMismatch {
		t.Errorf("read of the modified libc's code: %v, want FileMismatch", err)
	}
	if _, err := ql.ELF(); err == nil || len(ql.Symbols()) != 0 {
		t.Error("symbols read from a library that does not match")
	}
	r := report.Build(q, report.Options{})
	var listed bool
	for _, n := range r.Notes {
		if strings.Contains(n, libcPath) && strings.Contains(n, coreID) && strings.Contains(n, fileID) && strings.Contains(n, "nothing is read from it") {
			listed = true
		}
	}
	if !listed {
		t.Errorf("report notes do not list %s with both build IDs: %q", libcPath, r.Notes)
	}
	for _, img := range r.Process.Images {
		if img.Path == libcPath && (img.Status != "mismatch" || !strings.Contains(img.Note, fileID) || !strings.Contains(img.Note, coreID)) {
			t.Errorf("report image %+v", img)
		}
	}
	// The crash story does not take frames from the wrong libc.
	for _, th := range r.Threads {
		if strings.HasPrefix(th.Function, "libc.so") {
			t.Errorf("thread %d symbolised in the refused libc: %s", th.TID, th.Function)
		}
	}

	// A sysroot without libc: libc is missing, its build ID named.
	os.Remove(filepath.Join(root, libcPath))
	m, err := coredump.Open(c.Core, "", coredump.Options{Sysroot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if ml := m.ImageByName("libc.so"); ml.Status != coredump.ImageMissing {
		t.Errorf("libc missing from the sysroot: %s", ml.Status)
	}
	if !containsWith(m.Warnings, libcPath+" (build ID "+coreID+") is not under "+root) {
		t.Errorf("warnings %q", m.Warnings)
	}
	_, err = m.ReadMemory(got, errnoLoc.Addr)
	if me, ok := coredump.AsMemoryError(err); !ok || me.Reason != coredump.FileUnavailable {
		t.Errorf("read of the missing libc's code: %v", err)
	}
}

// A core whose executable is not under the sysroot, with no BINARY given,
// is refused with a reason; the executable given explicitly still works.
func TestSysrootWithoutExecutable(t *testing.T) {
	c := crash(t, "go-nil-map")
	_, err := coredump.Open(c.Core, "", coredump.Options{Sysroot: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "no executable given") {
		t.Fatalf("open without the executable: %v", err)
	}
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{Sysroot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Exe.Status != coredump.ImageVerified {
		t.Errorf("explicit executable: %s", p.Exe.Status)
	}
}
