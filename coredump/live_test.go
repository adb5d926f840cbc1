//go:build linux

package coredump_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
)

// startService starts a live fixture and stops it when the test ends.
func startService(t testing.TB, name string) *fixtures.Service {
	t.Helper()
	f, err := fixtures.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Start(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// assertRunning fails unless the service runs on, untraced.
func assertRunning(t testing.TB, s *fixtures.Service, when string) {
	t.Helper()
	if err := s.Running(); err != nil {
		t.Fatalf("%s: %v\n%s", when, err, s.Output())
	}
}

// taskRegs reads the stack pointer and pc the kernel reports for a stopped
// thread in /proc/PID/task/TID/syscall ("nr args... sp pc", or "-1 sp pc").
func taskRegs(t *testing.T, pid, tid int) (sp, pc uint64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		t.Fatalf("thread %d: syscall file %q", tid, b)
	}
	sp, _ = strconv.ParseUint(strings.TrimPrefix(f[len(f)-2], "0x"), 16, 64)
	pc, _ = strconv.ParseUint(strings.TrimPrefix(f[len(f)-1], "0x"), 16, 64)
	return sp, pc
}

func TestLiveProcess(t *testing.T) {
	s := startService(t, "live-mutex-cgo")
	pid := s.PID()
	p, err := coredump.OpenLive(pid, coredump.LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.Live() || p.PID != pid || p.Command != "live-mutex-cgo" || len(p.Args) != 1 || p.Args[0] != s.Binary {
		t.Errorf("process: live %v pid %d command %q args %q", p.Live(), p.PID, p.Command, p.Args)
	}
	if p.Exe == nil || p.Exe.Status != coredump.ImageVerified || p.Exe.HostPath != s.Binary {
		t.Fatalf("executable %+v", p.Exe)
	}
	if libc := p.ImageByName("libc.so"); libc == nil || libc.Status != coredump.ImageVerified {
		t.Errorf("libc image %+v", libc)
	}
	if _, err := p.Delve(); err == nil {
		t.Errorf("Delve() on a live process should fail")
	}
	names := map[string]bool{}
	for _, m := range p.Mappings {
		names[m.Path] = true
	}
	if !names["[stack]"] || !names["[vdso]"] || !names[s.Binary] {
		t.Errorf("mappings lack [stack], [vdso] or the executable: %v", names)
	}
	if len(p.Threads) != 0 || p.Stopped() {
		t.Errorf("threads known before Stop")
	}

	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if !p.Stopped() {
		t.Fatal("not stopped")
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if len(p.Threads) != len(tasks) || p.Threads[0].TID != pid {
		t.Errorf("%d threads (first %d), /proc lists %d", len(p.Threads), p.Threads[0].TID, len(tasks))
	}
	for _, th := range p.Threads {
		sp, pc := taskRegs(t, pid, th.TID)
		if th.Regs.SP() != sp || th.Regs.PC() != pc {
			t.Errorf("thread %d: sp %#x pc %#x, the kernel says sp %#x pc %#x", th.TID, th.Regs.SP(), th.Regs.PC(), sp, pc)
		}
		if th.TP() == 0 || p.FindMapping(th.Regs.PC()) == nil {
			t.Errorf("thread %d: tp %#x pc %#x", th.TID, th.TP(), th.Regs.PC())
		}
	}

	// The mutex the service holds: locked, with every handler queued on
	// it (sync.Mutex state: bit 0 locked, waiters from bit 3).
	journal, ok := p.Exe.LookupSymbol("main.journal")
	if !ok {
		t.Fatal("no symbol main.journal")
	}
	state, err := p.ReadUint32(journal.Addr)
	if err != nil {
		t.Fatal(err)
	}
	waiters, _ := strconv.Atoi(s.Oracle.Facts["waiters"][0])
	if state&1 == 0 || int(state>>3) != waiters {
		t.Errorf("main.journal state %#x: want locked with %d waiters", state, waiters)
	}
	heapMu, _ := coredump.ParseAddr(s.Oracle.Facts["heap_mutex"][0])
	if st, err := p.ReadUint32(uint64(heapMu)); err != nil || st&1 == 0 {
		t.Errorf("heap mutex at %#x: state %#x, %v", heapMu, st, err)
	}
	// PROT_NONE reservations read as not dumped, like in a core.
	for _, m := range p.Mappings {
		if m.Perm == 0 {
			_, err := p.ReadMemory(make([]byte, 8), m.Start)
			if me, ok := coredump.AsMemoryError(err); !ok || me.Reason != coredump.NotDumped {
				t.Errorf("read of PROT_NONE %v: %v", m, err)
			}
			break
		}
	}

	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	if p.Stopped() || p.Frozen() <= 0 || p.Frozen() > 5*time.Second {
		t.Errorf("after detach: stopped %v, frozen %v", p.Stopped(), p.Frozen())
	}
	t.Logf("%d threads frozen for %v", len(p.Threads), p.Frozen())
	assertRunning(t, s, "after detach")

	// A second snapshot of the same process works.
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	assertRunning(t, s, "after close")
}

// Detach called while Stop is under way (a SIGINT handler does this) cuts
// Stop short and leaves the process running; so does a Stop that fails.
func TestLiveStopInterruptedOrFailed(t *testing.T) {
	s := startService(t, "live-mutex-cgo")
	for i := 0; i < 20; i++ {
		p, err := coredump.OpenLive(s.PID(), coredump.LiveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(time.Duration(i*50) * time.Microsecond)
			p.Detach()
		}()
		p.Stop()
		p.Detach()
		p.Close()
		assertRunning(t, s, fmt.Sprintf("detach after %dµs", i*50))
	}
	// No thread can stop within a nanosecond.
	p, err := coredump.OpenLive(s.PID(), coredump.LiveOptions{StopTimeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "did not stop within") {
		t.Errorf("Stop with a 1ns timeout: %v", err)
	}
	assertRunning(t, s, "after a failed stop")
}

func TestLiveErrors(t *testing.T) {
	s := startService(t, "live-mutex-cgo")
	for _, tc := range []struct {
		pid  int
		want string
	}{
		{os.Getpid(), "coreexplain itself"},
		{0, "not a process ID"},
		{1 << 30, "no such process"},
	} {
		_, err := coredump.OpenLive(tc.pid, coredump.LiveOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenLive(%d): %v, want %q", tc.pid, err, tc.want)
		}
	}
	// A thread ID is not a process.
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", s.PID()))
	for _, e := range tasks {
		if e.Name() != strconv.Itoa(s.PID()) {
			tid, _ := strconv.Atoi(e.Name())
			if _, err := coredump.OpenLive(tid, coredump.LiveOptions{}); err == nil || !strings.Contains(err.Error(), "a thread of process") {
				t.Errorf("OpenLive(thread %d): %v", tid, err)
			}
			break
		}
	}
	// A process someone else traces.
	p, err := coredump.Attach(s.PID(), coredump.LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	q, err := coredump.OpenLive(s.PID(), coredump.LiveOptions{})
	if err == nil {
		err = q.Stop()
		q.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "already being traced by PID") {
		t.Errorf("attach to a traced process: %v", err)
	}
	p.Detach()
	assertRunning(t, s, "after the double attach")
}

// BenchmarkStopDetach measures how long a snapshot freezes a live process:
// stopping every thread, reading registers and the memory map, detaching.
func BenchmarkStopDetach(b *testing.B) {
	s := startService(b, "live-mutex-cgo")
	p, err := coredump.OpenLive(s.PID(), coredump.LiveOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		if err := p.Stop(); err != nil {
			b.Fatal(err)
		}
		if err := p.Detach(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(p.Threads)), "threads")
}

// BenchmarkWriteCore measures writing the core of a stopped process.
func BenchmarkWriteCore(b *testing.B) {
	s := startService(b, "live-mutex-cgo")
	p, err := coredump.Attach(s.PID(), coredump.LiveOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	path := filepath.Join(b.TempDir(), "core")
	var st *coredump.CoreStats
	for b.Loop() {
		os.Remove(path)
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if st, err = p.WriteCore(f, coredump.CoreOptions{}); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	b.SetBytes(int64(st.Memory))
}

// A process stopped by job control before the attach stays stopped after
// the detach, and runs again on SIGCONT: attach restores what it found.
func TestLiveJobControlStop(t *testing.T) {
	s := startService(t, "live-mutex-cgo")
	if err := s.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, 'T')
	p, err := coredump.Attach(s.PID(), coredump.LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Threads) < 2 {
		t.Errorf("%d threads", len(p.Threads))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, 'T')
	s.Cmd.Process.Signal(syscall.SIGCONT)
	waitState(t, s, 'S')
	assertRunning(t, s, "after SIGCONT")
}

func waitState(t *testing.T, s *fixtures.Service, want byte) {
	t.Helper()
	var st byte
	for i := 0; i < 200; i++ {
		if st, _ = s.State(); st == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("state %c, want %c", st, want)
}

// A process that exits between OpenLive and Stop is a clear error.
func TestLiveVanished(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Start returns once execve closed the child's close-on-exec pipe,
	// before the kernel has mapped the new executable: wait until sleep
	// sleeps.
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i:]), ") S") {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p, err := coredump.OpenLive(cmd.Process.Pid, coredump.LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cmd.Process.Kill()
	cmd.Wait()
	if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "the process exited") {
		t.Errorf("Stop of an exited process: %v", err)
	}
}
