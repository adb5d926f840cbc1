package coredump_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreexplain/coreexplain/coredump"
)

// noteSegment returns the file offset and size of the core's note segment.
func noteSegment(t *testing.T, data []byte) (off, size int) {
	t.Helper()
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, ph := range ef.Progs {
		if ph.Type == elf.PT_NOTE {
			return int(ph.Off), int(ph.Filesz)
		}
	}
	t.Fatal("no PT_NOTE")
	return 0, 0
}

// A note whose length field runs past the segment keeps the threads before
// it, is named in the warnings, and keeps the core away from Delve, whose
// note reader would allocate whatever the length says.
func TestDamagedNotes(t *testing.T) {
	c := crash(t, "go-concurrent-map")
	data, err := os.ReadFile(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	full := open(t, c.Core, c.Binary)
	off, size := noteSegment(t, data)
	// Walk to the fifth note and give it a 4 GiB name.
	pos := off
	for range 4 {
		namesz := int(binary.LittleEndian.Uint32(data[pos:]))
		descsz := int(binary.LittleEndian.Uint32(data[pos+4:]))
		pos += 12 + (namesz+3)&^3 + (descsz+3)&^3
	}
	if pos >= off+size {
		t.Fatal("fewer than five notes")
	}
	bad := append([]byte(nil), data...)
	binary.LittleEndian.PutUint32(bad[pos:], 0xffffffff)
	path := filepath.Join(t.TempDir(), "core")
	os.WriteFile(path, bad, 0o644)
	p := open(t, path, c.Binary)
	if len(p.Threads) == 0 || len(p.Threads) >= len(full.Threads) {
		t.Errorf("%d threads kept of %d", len(p.Threads), len(full.Threads))
	}
	if !containsWith(p.Warnings, "run past the end of the notes") {
		t.Errorf("warnings %q", p.Warnings)
	}
	if _, err := p.Delve(); err == nil || !strings.Contains(err.Error(), "notes are damaged") {
		t.Errorf("Delve on damaged notes: %v", err)
	}
	// The intact core still gets Delve.
	if _, err := full.Delve(); err != nil {
		t.Errorf("Delve on the intact core: %v", err)
	}
}

// A core cut inside its notes keeps the threads whose notes are complete,
// says the notes are missing, and lists that among the effects.
func TestTruncatedInsideNotes(t *testing.T) {
	c := crash(t, "go-concurrent-map")
	data, err := os.ReadFile(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	off, size := noteSegment(t, data)
	path := filepath.Join(t.TempDir(), "core")
	os.WriteFile(path, data[:off+size/2], 0o644)
	p := open(t, path, c.Binary)
	tr := p.Truncation
	if tr == nil || !tr.NotesMissing || tr.ExpectedSize != int64(len(data)) || tr.FileSize != int64(off+size/2) {
		t.Fatalf("truncation %+v", tr)
	}
	if len(p.Threads) == 0 {
		t.Error("no thread kept")
	}
	effects := p.TruncationEffects()
	if len(effects) == 0 || !strings.Contains(effects[0].What, "note segment is cut short") {
		t.Errorf("effects %v", effects)
	}
	if _, err := p.Delve(); err == nil {
		t.Error("Delve opened on cut notes")
	}
}

// A thread whose stack lies in the lost part of a truncated core is named
// among the truncation's effects.
func TestTruncationEffectsNameThreads(t *testing.T) {
	c := crash(t, "cgo-null-write")
	full := open(t, c.Core, c.Binary)
	data, err := os.ReadFile(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	// Cut just before the segment holding the first thread's stack.
	sp := full.Threads[0].Regs.SP()
	m := full.FindMapping(sp)
	if m == nil || m.Dumped == 0 {
		t.Fatalf("first thread's sp %#x in %v", sp, m)
	}
	ef, _ := elf.NewFile(bytes.NewReader(data))
	var cut uint64
	for _, ph := range ef.Progs {
		if ph.Type == elf.PT_LOAD && ph.Vaddr == m.Start {
			cut = ph.Off
		}
	}
	path := filepath.Join(t.TempDir(), "core")
	os.WriteFile(path, data[:cut], 0o644)
	p := open(t, path, c.Binary)
	var named bool
	for _, e := range p.TruncationEffects() {
		if e.TID == full.Threads[0].TID && strings.Contains(e.What, "its frames cannot be read") {
			named = true
		}
	}
	if !named {
		t.Errorf("thread %d's lost stack not among %v", full.Threads[0].TID, p.TruncationEffects())
	}
	_, err = p.ReadMemory(make([]byte, 8), sp)
	if me, ok := coredump.AsMemoryError(err); !ok || me.Reason != coredump.Truncated {
		t.Errorf("read at the lost sp: %v", err)
	}
}

// Paths in the core are hostile: one naming a FIFO (which would block an
// open) or leading out of the sysroot with "../" is never opened.
func TestHostileFilePaths(t *testing.T) {
	c := crash(t, "go-nil-field")
	data, err := os.ReadFile(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	full := open(t, c.Core, c.Binary)
	exePath := full.Exe.Path
	i := bytes.Index(data, append([]byte(exePath), 0))
	if i < 0 {
		t.Fatal("executable path not in the core")
	}
	dir := t.TempDir()
	fifo := dir + "/"
	if len(fifo) >= len(exePath) {
		t.Skip("temporary directory path too long to stand in for the executable's")
	}
	fifo += strings.Repeat("f", len(exePath)-len(fifo))
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), data...)
	copy(bad[i:], fifo)
	core := filepath.Join(dir, "core")
	os.WriteFile(core, bad, 0o644)
	done := make(chan error, 1)
	go func() {
		p, err := coredump.Open(core, c.Binary, coredump.Options{})
		if err == nil {
			if p.Exe.Status != coredump.ImageVerified {
				err = fmt.Errorf("explicit executable: %s", p.Exe.Status)
			}
			p.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Open blocked on a FIFO named in the core")
	}
	// A FIFO given as the core is refused without opening it.
	_, err = coredump.Open(fifo, c.Binary, coredump.Options{})
	if err == nil || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("FIFO as the core: %v", err)
	}
}
