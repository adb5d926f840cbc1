//go:build linux

package diagnose

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
)

// waitForParked is pasted into each unseen program: it returns once n
// goroutines show state in their header and fn in their stack.
const waitForParked = `
func parked(state, fn string, n int) {
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		k := 0
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "["+state) && strings.Contains(g, fn+"(") {
				k++
			}
		}
		if k >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
`

// unseenHangs are hung programs the fixtures folder does not contain,
// built and started in a temporary directory.
var unseenHangs = []struct {
	name, src string
	// want are substrings of the summaries of lock-contention findings.
	want []string
}{
	{"rwmutex-writer", `package main

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
)

var table struct {
	sync.RWMutex
	rows map[string]int
}

//go:noinline
func rebuild(held chan<- bool) {
	table.Lock()
	held <- true
	time.Sleep(time.Hour)
	table.rows = map[string]int{}
	table.Unlock()
}

//go:noinline
func lookup(k string) int {
	table.RLock()
	defer table.RUnlock()
	return table.rows[k]
}
` + waitForParked + `
func main() {
	held := make(chan bool)
	go rebuild(held)
	<-held
	for i := 0; i < 3; i++ {
		go lookup(fmt.Sprint(i))
	}
	parked("sync.RWMutex.RLock", "main.lookup", 3)
	fmt.Println("FACT ready=1")
	select {}
}
`, []string{"3 goroutines in main.lookup wait to read-lock sync.RWMutex main.table, held by goroutine ", " in main.rebuild, which is waiting (sleep) in time.Sleep"}},
	{"abba-deadlock", `package main

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
)

type account struct {
	id      int
	balance int
	mu      sync.Mutex
}

//go:noinline
func transfer(from, to *account, amount int, step *sync.WaitGroup) {
	from.mu.Lock()
	step.Done()
	step.Wait()
	to.mu.Lock()
	from.balance -= amount
	to.balance += amount
	to.mu.Unlock()
	from.mu.Unlock()
}
` + waitForParked + `
func main() {
	a, b := &account{id: 1}, &account{id: 2}
	var step sync.WaitGroup
	step.Add(2)
	go transfer(a, b, 10, &step)
	go transfer(b, a, 20, &step)
	parked("sync.Mutex.Lock", "main.transfer", 2)
	fmt.Println("FACT ready=1")
	time.Sleep(time.Hour)
}
`, []string{"1 goroutine in main.transfer waits to lock sync.Mutex at ", ", held by goroutine ", "deadlock: goroutine ", " and waits for sync.Mutex at "}},
	{"waitgroup-never-done", `package main

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
)

var (
	wg   sync.WaitGroup
	jobs = make(chan int)
)

//go:noinline
func worker() {
	for j := range jobs { // jobs is never closed
		_ = j
	}
	wg.Done()
}

//go:noinline
func waitAll(done chan<- bool) {
	wg.Wait()
	done <- true
}
` + waitForParked + `
func main() {
	wg.Add(2)
	go worker()
	go worker()
	done := make(chan bool)
	go waitAll(done)
	parked("sync.WaitGroup.Wait", "main.waitAll", 1)
	parked("chan receive", "main.worker", 2)
	fmt.Println("FACT ready=1")
	time.Sleep(time.Hour)
	<-done
}
`, []string{"1 goroutine in main.waitAll waits on sync.WaitGroup main.wg, waiting for goroutine ", " in main.worker (and 1 other), which is itself waiting (chan receive) on channel main.jobs", "2 goroutines in main.worker wait to receive from channel main.jobs; no other goroutine's code or stack refers to it"}},
}

func TestUnseenHangs(t *testing.T) {
	t.Setenv("COREEXPLAIN_FIXTURE_CACHE", t.TempDir())
	for _, u := range unseenHangs {
		t.Run(u.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module unseen/"+u.name+"\n\ngo 1.21\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(u.src), 0o644); err != nil {
				t.Fatal(err)
			}
			fx := &fixtures.Fixture{Name: u.name, Dir: dir, Spec: fixtures.Spec{Lang: fixtures.LangGo, Live: true}}
			s, err := fx.Start(fixtures.Default)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Stop()
			p, err := coredump.Attach(s.PID(), coredump.LiveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			fs := Run(NewFacts(p))
			p.Close()
			if err := s.Running(); err != nil {
				t.Fatal(err)
			}
			var text []string
			for _, f := range findings(fs, "lock-contention") {
				text = append(text, f.Summary)
			}
			all := strings.Join(text, "\n")
			for _, w := range u.want {
				if !strings.Contains(all, w) {
					t.Errorf("%q missing from:\n%s", w, all)
				}
			}
		})
	}
}
