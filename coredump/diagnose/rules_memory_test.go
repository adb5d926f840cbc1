package diagnose_test

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/diagnose"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/coredump/memory"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

func findings(t *testing.T, c *fixtures.Crash) ([]diagnose.Finding, *diagnose.Facts) {
	t.Helper()
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	f := diagnose.NewFacts(p)
	return diagnose.Run(f), f
}

// evidenceText joins everything a finding says, for substring checks.
func evidenceText(fd diagnose.Finding) string {
	var b strings.Builder
	b.WriteString(fd.Summary + "\n" + fd.Key + "\n")
	for _, e := range fd.Evidence {
		fmt.Fprintf(&b, "%s | %s | %s\n", e.What, e.Value, e.Source)
	}
	return b.String()
}

func hasValue(fd diagnose.Finding, v string) bool {
	for _, e := range fd.Evidence {
		if e.Value == v {
			return true
		}
	}
	return false
}

// memoryClasses are the classes the memory and fault rules own.
var memoryClasses = map[string]bool{
	"nil-deref": true, "unmapped-access": true, "dangling-slice": true, "c-retains-go-pointer": true,
	"stack-overflow": true, "write-to-readonly": true, "exec-non-executable": true, "non-canonical-address": true,
	"misaligned": true, "bus-error-mmap": true, "illegal-instruction": true, "c-divide-error": true,
}

// loadFixtures loads every fixture.
func loadFixtures(t *testing.T) []*fixtures.Fixture {
	t.Helper()
	names, err := fixtures.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []*fixtures.Fixture
	for _, name := range names {
		fx, err := fixtures.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fx)
	}
	return out
}

// Every fixture whose expected class is a memory or fault class gets that
// class as its first finding, with the facts its fixture.json names.
func TestMemoryFixtures(t *testing.T) {
	ran := 0
	for _, fx := range loadFixtures(t) {
		name := fx.Name
		class, _ := fx.Spec.Expect["class"].(string)
		if !memoryClasses[class] {
			continue
		}
		variants := []fixtures.Variant{fixtures.Default}
		if fx.Spec.Lang != fixtures.LangGo {
			variants = append(variants, fixtures.Variant{CC: "musl-gcc"})
		}
		for _, v := range variants {
			ran++
			t.Run(name+"/"+v.String(), func(t *testing.T) {
				if v.Musl() {
					if _, err := exec.LookPath(v.CC); err != nil {
						t.Skip("musl-gcc not installed (Debian package musl-tools)")
					}
				}
				c, err := fx.Crash(v)
				if err != nil {
					t.Fatal(err)
				}
				fds, facts := findings(t, c)
				if len(fds) == 0 || string(fds[0].Class) != class || !fds[0].Cause {
					for _, fd := range fds {
						t.Logf("%s (cause %v): %s", fd.Class, fd.Cause, fd.Summary)
					}
					t.Fatalf("first finding is not a %s cause; notes %q", class, facts.Notes())
				}
				checkExpect(t, fx, c, fds[0])
			})
		}
	}
	if ran < 7 {
		t.Errorf("only %d memory fixtures", ran)
	}
}

var reStackBounds = regexp.MustCompile(`(?m)^runtime: sp=0x[0-9a-f]+ stack=\[(0x[0-9a-f]+), (0x[0-9a-f]+)\]`)

func checkExpect(t *testing.T, fx *fixtures.Fixture, c *fixtures.Crash, fd diagnose.Finding) {
	t.Helper()
	text := evidenceText(fd)
	exp := fx.Spec.Expect
	str := func(k string) string { s, _ := exp[k].(string); return s }
	if fn := str("fault_function"); fn != "" && (fd.Location == nil || fd.Location.Function != fn) &&
		!strings.Contains(fd.Summary, fn) {
		t.Errorf("fault function %q not named: location %+v, summary %q", fn, fd.Location, fd.Summary)
	}
	if a := str("addr"); a != "" && !strings.Contains(text, a) {
		t.Errorf("fault address %s not in the evidence:\n%s", a, text)
	}
	if acc := str("access"); acc != "" && !hasValue(fd, acc) && !strings.Contains(strings.ToLower(fd.Summary), acc) {
		t.Errorf("access %q not stated:\n%s", acc, text)
	}
	if f := str("field"); f != "" {
		if !hasValue(fd, f) || !hasValue(fd, str("base_type")) || fd.Key != str("base_type")+"."+f {
			t.Errorf("field %s of %s not found:\n%s", f, str("base_type"), text)
		}
		if fd.Location == nil || fd.Location.Function != str("frame") {
			t.Errorf("location %+v, want %s", fd.Location, str("frame"))
		}
	}
	if v := str("variable"); v != "" {
		want := fmt.Sprintf("slice %s in ", v)
		if !strings.Contains(text, want) {
			t.Errorf("variable %s not named:\n%s", v, text)
		}
		data := c.Oracle.Facts["data"]
		if len(data) == 0 || !strings.Contains(text, "data "+data[0]) {
			t.Errorf("data pointer %q not in the evidence:\n%s", data, text)
		}
		if r := str("region"); !hasValue(fd, r) {
			t.Errorf("region %s not in the evidence:\n%s", r, text)
		}
	}
	if h := str("holder"); h != "" {
		saved := c.Oracle.Facts["saved"]
		if len(saved) == 0 || !strings.Contains(text, h+" at ") || !hasValue(fd, saved[0]) {
			t.Errorf("holder %s holding %q not found:\n%s", h, saved, text)
		}
		if !strings.Contains(text, "fault address") {
			t.Errorf("not tied to the fault:\n%s", text)
		}
	}
	if fn := str("recursing_function"); fn != "" && (!hasValue(fd, fn) || fd.Key != "recursion "+fn) {
		t.Errorf("recursing function %s not named:\n%s", fn, text)
	}
	// A Go stack overflow: the stack bounds the runtime printed.
	if m := reStackBounds.FindStringSubmatch(c.Stderr); m != nil && fd.Class == "stack-overflow" {
		if !strings.Contains(text, "("+m[1]+"-"+m[2]+")") {
			t.Errorf("stack [%s, %s] the runtime printed is not in the evidence:\n%s", m[1], m[2], text)
		}
	}
	if lit := str("literal"); lit != "" && !hasValue(fd, strconv.Quote(lit)) {
		t.Errorf("literal %q not shown:\n%s", lit, text)
	}
	if caller := str("caller"); caller != "" && !strings.Contains(fd.Summary, "called from "+caller) {
		t.Errorf("caller %s not named: %s", caller, fd.Summary)
	}
	if sym := str("target_symbol"); sym != "" && !strings.Contains(fd.Summary, "in "+sym) {
		t.Errorf("target symbol %s not named: %s", sym, fd.Summary)
	}
}

// The nil-deref field path comes out the same from binaries of older
// toolchains (different runtime layouts, register ABI changes).
func TestNilDerefOlderToolchains(t *testing.T) {
	fx, err := fixtures.Load("go-nil-field")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []fixtures.Variant{{Go: "go1.21.13"}, {Go: "go1.22.12"}, {Go: "go1.24.13"}} {
		t.Run(v.String(), func(t *testing.T) {
			c, err := fx.Crash(v)
			if err != nil {
				t.Fatal(err)
			}
			fds, facts := findings(t, c)
			if len(fds) == 0 || fds[0].Class != "nil-deref" || fds[0].Key != "*main.Config.Limits.MaxIdle" {
				t.Fatalf("findings %+v; notes %q", fds, facts.Notes())
			}
		})
	}
}

// A slice kept in a struct field over a freed C buffer: the faulting
// frame's pointer argument is dead at the fault, so the rule reaches the
// slice through the package variable that holds it
// (main.pending[0].body), with the data pointer and length the program
// printed, and a header that lies in the field body of the heap object.
func TestDanglingSliceField(t *testing.T) {
	fx, err := fixtures.Load("cgo-dangling-slice-field")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []fixtures.Variant{fixtures.Default, {CC: "musl-gcc"}} {
		t.Run(v.String(), func(t *testing.T) {
			if v.Musl() {
				if _, err := exec.LookPath(v.CC); err != nil {
					t.Skip("musl-gcc not installed (Debian package musl-tools)")
				}
			}
			c := fixturetest.MustCrash(t, fx.Name, v)
			fds, facts := findings(t, c)
			if len(fds) == 0 || fds[0].Class != "dangling-slice" || !fds[0].Cause {
				t.Fatalf("findings %+v; notes %q", fds, facts.Notes())
			}
			fd := fds[0]
			data, n := c.Oracle.Facts["data"][0], c.Oracle.Facts["len"][0]
			want := fmt.Sprintf("slice main.pending[0].body in package main []uint8 = {data %s, len %s, cap %s}", data, n, n)
			if fd.Evidence[0].What != want {
				t.Errorf("evidence %q, want %q", fd.Evidence[0].What, want)
			}
			hdr := fd.Evidence[0].Addr
			if hdr == nil {
				t.Fatal("no header address")
			}
			r := facts.Memory().Classify(uint64(*hdr))
			// body follows name (a 16-byte string) in main.upload.
			if r.Kind != memory.GoHeap || r.Heap.State != goruntime.ObjectAllocated || uint64(*hdr)-uint64(r.Heap.Object) != 16 {
				t.Errorf("header %s: %s", hdr, r.Summary)
			}
			if !strings.Contains(fd.Summary, "the fault address") || !hasValue(fd, "unmapped") {
				t.Errorf("not tied to the unmapped buffer: %s", evidenceText(fd))
			}
		})
	}
}

// C memory that holds register values C did not store (glibc's jmp_buf,
// filled by setjmp from Go's callee-saved registers) is no retained Go
// pointer; neither is a pointer into a Go stack or the runtime's g. On
// every cgo fixture, with glibc and musl, the rule reports exactly the
// holders the fixture names.
func TestCRetainsGoPointerHolders(t *testing.T) {
	ran := 0
	for _, fx := range loadFixtures(t) {
		name := fx.Name
		if fx.Spec.Lang != fixtures.LangCgo || fx.Spec.Live {
			continue
		}
		holder, _ := fx.Spec.Expect["holder"].(string)
		for _, v := range []fixtures.Variant{fixtures.Default, {CC: "musl-gcc"}} {
			t.Run(name+"/"+v.String(), func(t *testing.T) {
				if v.Musl() {
					if _, err := exec.LookPath(v.CC); err != nil {
						t.Skip("musl-gcc not installed (Debian package musl-tools)")
					}
				}
				if v.Musl() && len(fx.Spec.Prebuild) > 0 {
					t.Skip("the fixture mixes its own prebuilt C library into a glibc program")
				}
				c, err := fx.Crash(v)
				if err != nil {
					t.Fatal(err)
				}
				ran++
				fds, _ := findings(t, c)
				var got []string
				for _, fd := range fds {
					if fd.Class == "c-retains-go-pointer" {
						got = append(got, fd.Key)
					}
				}
				want := []string(nil)
				if holder != "" {
					want = []string{"holder " + holder}
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("c-retains-go-pointer holders %q, want %q", got, want)
				}
			})
		}
	}
	if ran < 20 {
		t.Errorf("only %d cgo fixture variants ran", ran)
	}
}
