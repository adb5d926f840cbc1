package diagnose_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/diagnose"
	"github.com/coreexplain/coreexplain/fixtures"
)

// goVariants are the toolchains the Go rules are checked with.
var goVariants = []fixtures.Variant{{}, {Go: "go1.22.12"}, {Go: "go1.24.13"}}

func crashOf(t *testing.T, name string, v fixtures.Variant) *fixtures.Crash {
	t.Helper()
	fx, err := fixtures.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fx.Crash(v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func findingOf(fds []diagnose.Finding, class string) *diagnose.Finding {
	for i := range fds {
		if string(fds[i].Class) == class {
			return &fds[i]
		}
	}
	return nil
}

// TestGoRulesOnFixtures checks go-panic, go-fatal and external-signal on
// every fixture whose expectations name one of them, with the texts the
// runtime printed and the class-specific evidence.
func TestGoRulesOnFixtures(t *testing.T) {
	names, err := fixtures.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range goVariants {
		for _, name := range names {
			fx, err := fixtures.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			class, _ := fx.Spec.Expect["class"].(string)
			if class != "go-panic" && class != "go-fatal" && class != "external-signal" {
				continue
			}
			t.Run(v.String()+"/"+name, func(t *testing.T) {
				c := crashOf(t, name, v)
				fds, facts := findings(t, c)
				fd := findingOf(fds, class)
				if fd == nil {
					for _, f := range fds {
						t.Logf("%s: %s", f.Class, f.Summary)
					}
					t.Fatalf("no %s finding; notes %q", class, facts.Notes())
				}
				if !fd.Cause || string(fds[0].Class) != class {
					t.Errorf("%s is not the cause (first finding %s)", class, fds[0].Class)
				}
				if len(fd.Evidence) == 0 || fd.Key == "" {
					t.Errorf("%s without evidence or key: %+v", class, fd)
				}
				text := evidenceText(*fd)
				exp := fx.Spec.Expect
				o := c.Oracle
				switch class {
				case "go-panic":
					want := o.Panic[len(o.Panic)-1]
					if !strings.Contains(fd.Summary, want) {
						t.Errorf("summary %q lacks the panic the runtime printed, %q", fd.Summary, want)
					}
					if typ, ok := exp["panic_type"].(string); ok && !strings.Contains(text, "panic value of type "+typ) {
						t.Errorf("panic type %s missing:\n%s", typ, text)
					}
					if w, ok := exp["wrapped"].([]any); ok {
						for _, typ := range w {
							if !strings.Contains(text, fmt.Sprintf("wraps %s", typ)) {
								t.Errorf("wrapped %s missing:\n%s", typ, text)
							}
						}
					}
				case "go-fatal":
					if !strings.HasPrefix(fd.Summary, "fatal error: "+o.Fatal) || fd.Key == "" {
						t.Errorf("summary %q, runtime printed fatal error %q", fd.Summary, o.Fatal)
					}
				case "external-signal":
					sender := o.Facts["sender_pid"]
					if len(sender) == 0 || !strings.Contains(fd.Summary, "process "+sender[0]) {
						t.Errorf("summary %q does not name the sender %v", fd.Summary, sender)
					}
					if sig, _ := exp["signal"].(string); !strings.HasPrefix(fd.Summary, sig) {
						t.Errorf("summary %q does not start with %s", fd.Summary, sig)
					}
				}
				if frame, ok := exp["frame"].(string); ok && (fd.Location == nil || fd.Location.Function != frame) {
					t.Errorf("location %+v, want function %s", fd.Location, frame)
				}
				for _, w := range asStrings(exp["waiting"]) {
					if !strings.Contains(text, w) {
						t.Errorf("waiting goroutine in %s missing:\n%s", w, text)
					}
				}
				if n, ok := exp["oom_bytes"].(float64); ok && !strings.Contains(text, fmt.Sprint(int64(n))) {
					t.Errorf("the %d bytes asked are missing:\n%s", int64(n), text)
				}
				if name == "go-concurrent-map" && !strings.Contains(text, "same map") && !strings.Contains(fd.Summary, "map 0x") {
					t.Errorf("the shared map is not named:\n%s", text)
				}
			})
		}
	}
}

func asStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// unseenGo are Go crash programs the fixtures folder does not contain.
var unseenGo = []struct {
	name, src, class string
	want             []string
}{
	{"repanic-in-defer", `package main

import "errors"

var errClosed = errors.New("connection closed")

//go:noinline
func serve() {
	defer func() {
		if r := recover(); r != nil {
			panic(fmt.Sprintf("serve: %v", r))
		}
	}()
	panic(errClosed)
}

func main() { serve() }
`, "go-panic", []string{"serve: connection closed", "earlier panic", "connection closed [recovered]"}},
	{"type-assertion", `package main

type Shape interface{ Area() float64 }
type Square struct{ Side float64 }
type Circle struct{ R float64 }

func (s Square) Area() float64 { return s.Side * s.Side }
func (c Circle) Area() float64 { return 3 * c.R * c.R }

//go:noinline
func side(s Shape) float64 { return s.(Square).Side }

func main() { println(side(Circle{R: 2})) }
`, "go-panic", []string{"interface conversion: main.Shape is main.Circle, not main.Square", "*runtime.TypeAssertionError", "main.side"}},
	{"closed-channel-in-worker", `package main

import "sync"

//go:noinline
func publish(out chan<- int, wg *sync.WaitGroup) {
	defer wg.Done()
	out <- 1
}

func main() {
	out := make(chan int)
	close(out)
	var wg sync.WaitGroup
	wg.Add(1)
	go publish(out, &wg)
	wg.Wait()
}
`, "go-panic", []string{"send on closed channel", "main.publish"}},
	{"three-index-slice", `package main

import "os"

//go:noinline
func window(b []byte, hi int) []byte { return b[1:2:hi] }

//go:noinline
func at(b []byte, i int) byte { return b[i] }

func main() {
	b := make([]byte, 3, 3)
	if len(os.Args) > 5 {
		println(at(b, -len(os.Args)))
	}
	println(len(window(b, len(os.Args)+6)))
}
`, "go-panic", []string{"slice bounds out of range [::7] with capacity 3", "main.window", "runtime.boundsError"}},
	{"nil-func-call", `package main

type handler struct{ onEvent func(int) int }

//go:noinline
func dispatch(h *handler, ev int) int { return h.onEvent(ev) }

func main() { println(dispatch(&handler{}, 3)) }
`, "nil-deref", []string{"Nil function call in main.dispatch: h.onEvent is nil (func(int) int)"}},
	{"panic-nil-and-struct", `package main

import "os"

type Reading struct {
	Sensor string
	Value  float64
}

//go:noinline
func check(r Reading) {
	if len(os.Args) > 3 {
		panic(nil)
	}
	if r.Value < 0 {
		panic(r)
	}
}

func main() { check(Reading{Sensor: "t1", Value: -1.5}) }
`, "go-panic", []string{"main.Reading", "main.check", "Sensor:\"t1\""}},
	{"divide-by-zero-go", `package main

import "os"

//go:noinline
func average(total, n int) int { return total / n }

func main() { println(average(10, len(os.Args)-1)) }
`, "go-panic", []string{"integer divide by zero", "main.average"}},
	{"mutex-deadlock", `package main

import "sync"

type account struct {
	mu      sync.Mutex
	balance int
}

//go:noinline
func transfer(from, to *account, n int, ready, wg *sync.WaitGroup) {
	defer wg.Done()
	from.mu.Lock()
	defer from.mu.Unlock()
	ready.Done()
	ready.Wait()
	to.mu.Lock()
	defer to.mu.Unlock()
	from.balance -= n
	to.balance += n
}

func main() {
	a, b := &account{balance: 10}, &account{balance: 10}
	var ready, wg sync.WaitGroup
	ready.Add(2)
	wg.Add(2)
	go transfer(a, b, 1, &ready, &wg)
	go transfer(b, a, 1, &ready, &wg)
	wg.Wait()
}
`, "go-fatal", []string{"deadlock", "main.transfer", "main.main"}},
}

func TestUnseenGoPrograms(t *testing.T) {
	t.Setenv("COREEXPLAIN_FIXTURE_CACHE", t.TempDir())
	for _, u := range unseenGo {
		t.Run(u.name, func(t *testing.T) {
			dir := t.TempDir()
			src := u.src
			if strings.Contains(src, "fmt.Sprintf") && !strings.Contains(src, `"fmt"`) {
				src = strings.Replace(src, `import "errors"`, "import (\n\t\"errors\"\n\t\"fmt\"\n)", 1)
			}
			if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module unseen/"+u.name+"\n\ngo 1.21\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			fx := &fixtures.Fixture{Name: u.name, Dir: dir, Spec: fixtures.Spec{Lang: fixtures.LangGo}}
			c, err := fx.Crash(fixtures.Default)
			if err != nil {
				t.Fatal(err)
			}
			fds, facts := findings(t, c)
			fd := findingOf(fds, u.class)
			if fd == nil || !fd.Cause {
				for _, f := range fds {
					t.Logf("%s: %s", f.Class, f.Summary)
				}
				t.Fatalf("no %s cause; notes %q", u.class, facts.Notes())
			}
			text := evidenceText(*fd)
			if fd.Location != nil {
				text += fd.Location.Function
			}
			for _, w := range u.want {
				if !strings.Contains(text, w) {
					t.Errorf("%q missing from:\n%s", w, text)
				}
			}
			if u.class == "go-panic" {
				want := c.Oracle.Panic[len(c.Oracle.Panic)-1]
				if !strings.Contains(fd.Summary, want) {
					t.Errorf("summary %q lacks %q the runtime printed", fd.Summary, want)
				}
			}
		})
	}
}

// A deadlock of many goroutines lists the first ones and counts the rest,
// so the finding stays readable and cheap at any scale.
func TestDeadlockManyGoroutines(t *testing.T) {
	t.Setenv("COREEXPLAIN_FIXTURE_CACHE", t.TempDir())
	src := `package main

import "sync"

func main() {
	var mu sync.Mutex
	mu.Lock()
	for i := 0; i < 99; i++ {
		go func() { mu.Lock() }()
	}
	mu.Lock()
}
`
	f, err := fixtures.FromSource(t.TempDir(), "gen-deadlock-many", fixtures.Spec{Lang: fixtures.LangGo},
		map[string]string{"main.go": src, "go.mod": "module gen/deadlockmany\n\ngo 1.21\n"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	_, fs := diagnoseCrash(t, c)
	fd := findClass(fs, "go-fatal")
	if fd == nil {
		t.Fatalf("no go-fatal finding: %v", fs)
	}
	if !strings.Contains(fd.Summary, "all 100 goroutines of the program are blocked") {
		t.Errorf("summary %q does not count the 100 goroutines", fd.Summary)
	}
	listed, more := 0, ""
	for _, e := range fd.Evidence {
		if strings.HasPrefix(e.What, "goroutine ") && strings.Contains(e.What, "[sync.Mutex.Lock]") {
			listed++
		}
		if strings.Contains(e.What, "more, grouped by stack") {
			more = e.What
		}
	}
	if listed != 32 || more != "68 goroutines more, grouped by stack in the goroutine buckets" {
		t.Errorf("%d goroutines listed, then %q; want 32 and the 68 others counted", listed, more)
	}
}
