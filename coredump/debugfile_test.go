package coredump_test

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
)

// TestSeparateDebugFile: Debian's libc is stripped of .symtab; with its
// debug file installed (libc6-dbg) its local functions such as
// start_thread, which .dynsym lacks, have names. In a sysroot without the
// debug file they have none: nothing is taken from this machine's
// /usr/lib/debug.
func TestSeparateDebugFile(t *testing.T) {
	c := crash(t, "cgo-foreign-crash")
	p := open(t, c.Core, c.Binary)
	libc := p.ImageByName("libc.so")
	if libc == nil || libc.Status != coredump.ImageVerified {
		t.Fatalf("libc: %+v", libc)
	}
	f, err := libc.ELF()
	if err != nil {
		t.Fatal(err)
	}
	if f.Section(".symtab") != nil {
		t.Skip("this machine's libc is not stripped: nothing to find")
	}
	id := libc.FileIDs.GNU
	want := filepath.Join("/usr/lib/debug/.build-id", id[:2], id[2:]+".debug")
	if _, err := os.Stat(want); err != nil {
		t.Skipf("no debug file for libc (Debian package libc6-dbg): %v", err)
	}
	if got := libc.DebugFile(); got != want {
		t.Fatalf("libc's debug file %q, want %q", got, want)
	}
	st, ok := libc.LookupSymbol("start_thread")
	if !ok || st.Kind != elf.STT_FUNC {
		t.Fatalf("start_thread not named: %+v", st)
	}
	if dyn, _ := f.DynamicSymbols(); hasSymbol(dyn, "start_thread") {
		t.Fatal("start_thread is in .dynsym: the test proves nothing")
	}
	root := buildSysroot(t, p, nil)
	q, err := coredump.Open(c.Core, c.Binary, coredump.Options{Sysroot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if l := q.ImageByName("libc.so"); l == nil || l.DebugFile() != "" {
		t.Fatalf("sysroot without debug files: libc's debug file %q", l.DebugFile())
	}
	if _, ok := q.ImageByName("libc.so").LookupSymbol("start_thread"); ok {
		t.Error("start_thread named from outside the sysroot")
	}
}

func hasSymbol(syms []elf.Symbol, name string) bool {
	for _, s := range syms {
		if s.Name == name || strings.HasPrefix(s.Name, name+"@") {
			return true
		}
	}
	return false
}
