package diagnose_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/fixtures"
)

// unseen are crash programs of the memory and fault classes that the
// fixtures folder does not contain, built and crashed in a temporary
// directory: the rules must not depend on anything fixture-shaped.
var unseen = []struct {
	name, lang, src string
	class           string
	// want are substrings of the first finding's summary or evidence.
	want []string
}{
	{"mutual-recursion", "c", `
__attribute__((noinline, noclone)) int pong(volatile int *d);
__attribute__((noinline, noclone)) int ping(volatile int *d) { volatile char pad[128]; pad[0] = (char)*d; (*d)++; return pong(d) + pad[1]; }
__attribute__((noinline, noclone)) int pong(volatile int *d) { volatile char pad[96]; pad[0] = (char)*d; return ping(d) + pad[2]; }
int main(void) { volatile int d = 0; return ping(&d); }
`, "stack-overflow", []string{"recurs", "pong"}},
	{"divide-by-zero", "c", `
#include <stdio.h>
__attribute__((noinline, noclone)) int average(int total, int count) { return total / count; }
int main(void) { volatile int n = 0; printf("%d\n", average(10, n)); return 0; }
`, "c-divide-error", []string{"average", "divisor", " is 0"}},
	{"builtin-trap", "c", `
__attribute__((noinline, noclone)) void check_invariant(volatile int v) { if (v != 42) __builtin_trap(); }
int main(void) { check_invariant(7); return 0; }
`, "illegal-instruction", []string{"check_invariant", "ud2"}},
	{"non-canonical", "c", `
__attribute__((noinline, noclone)) void store(long *p, long v) { *p = v; }
int main(void) { store((long *)0x4141414141414141UL, 1); return 0; }
`, "non-canonical-address", []string{"0x4141414141414141", "store"}},
	{"misaligned-movaps", "c", `
__attribute__((noinline, noclone)) void load_vector(const char *p) { __asm__ volatile("movaps (%0), %%xmm0" : : "r"(p) : "xmm0"); }
static char buf[64] __attribute__((aligned(16)));
int main(void) { load_vector(buf + 8); return 0; }
`, "misaligned", []string{"load_vector", "16-byte alignment"}},
	{"truncated-mmap", "c", `
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
__attribute__((noinline, noclone)) int read_record(const volatile char *m) { return m[4096 + 16]; }
int main(void) {
	int fd = open("records.db", O_RDWR | O_CREAT | O_TRUNC, 0644);
	char page[8192] = {1};
	write(fd, page, sizeof page);
	const char *m = mmap(0, 8192, PROT_READ, MAP_SHARED, fd, 0);
	ftruncate(fd, 100);
	return read_record(m);
}
`, "bus-error-mmap", []string{"records.db", "past the end of the file", "read_record"}},
	{"const-table-write", "c", `
static const int limits[4] = {1, 2, 3, 4};
__attribute__((noinline, noclone)) void raise_limit(int *l, int i) { l[i] = 99; }
int main(void) { raise_limit((int *)limits, 2); return limits[0]; }
`, "write-to-readonly", []string{"raise_limit", ".rodata", "limits"}},
	{"go-nil-owner", "go", `package main

import "fmt"

type Owner struct {
	Name string
	ID   int64
}

type Meta struct {
	Counts [3]int64
	Owner  Owner
}

type Node struct {
	Label string
	Meta  *Meta
}

//go:noinline
func ownerID(n *Node) int64 { return n.Meta.Owner.ID }

func main() { fmt.Println(ownerID(&Node{Label: "x"})) }
`, "nil-deref", []string{"Owner.ID", "*main.Meta", "main.ownerID"}},
}

func TestUnseenPrograms(t *testing.T) {
	t.Setenv("COREEXPLAIN_FIXTURE_CACHE", t.TempDir())
	for _, u := range unseen {
		t.Run(u.name, func(t *testing.T) {
			dir := t.TempDir()
			file := "main.c"
			if u.lang == "go" {
				file = "main.go"
				if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module unseen/"+u.name+"\n\ngo 1.21\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, file), []byte(u.src), 0o644); err != nil {
				t.Fatal(err)
			}
			fx := &fixtures.Fixture{Name: u.name, Dir: dir, Spec: fixtures.Spec{Lang: fixtures.Lang(u.lang)}}
			c, err := fx.Crash(fixtures.Default)
			if err != nil {
				t.Fatal(err)
			}
			fds, facts := findings(t, c)
			if len(fds) == 0 || string(fds[0].Class) != u.class {
				for _, fd := range fds {
					t.Logf("%s: %s", fd.Class, fd.Summary)
				}
				t.Fatalf("want a %s finding first; notes %q", u.class, facts.Notes())
			}
			text := evidenceText(fds[0])
			if fds[0].Location != nil {
				text += fds[0].Location.Function
			}
			for _, w := range u.want {
				if !strings.Contains(text, w) {
					t.Errorf("%q missing from:\n%s", w, text)
				}
			}
		})
	}
}
