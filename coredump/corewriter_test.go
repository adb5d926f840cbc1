//go:build linux

package coredump_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/go-delve/delve/pkg/proc"
)

// dumpService stops the service, writes its core, and detaches. It
// returns the live view (stopped while the core was written, so its
// threads and the bytes read are the core's) and the core's path.
func dumpService(t *testing.T, pid int, samples map[uint64][]byte, stopped func(*coredump.Process)) (*coredump.Process, string, *coredump.CoreStats) {
	t.Helper()
	p, err := coredump.Attach(pid, coredump.LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	for addr, b := range samples {
		if _, err := p.ReadMemory(b, addr); err != nil {
			t.Fatalf("sample at %#x: %v", addr, err)
		}
	}
	stopped(p)
	path := filepath.Join(t.TempDir(), "core")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.WriteCore(f, coredump.CoreOptions{})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if derr := p.Detach(); derr != nil {
		t.Error(derr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p, path, st
}

func TestDumpReadsBack(t *testing.T) {
	s := startService(t, "live-mutex-cgo")
	pid := s.PID()
	pre, err := coredump.OpenLive(pid, coredump.LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	journal, _ := pre.Exe.LookupSymbol("main.journal")
	heapMu, _ := coredump.ParseAddr(s.Oracle.Facts["heap_mutex"][0])
	libc := pre.ImageByName("libc.so")
	sleep, ok := libc.LookupSymbol("sleep")
	if !ok {
		t.Fatal("no sleep in libc")
	}
	pre.Close()
	samples := map[uint64][]byte{journal.Addr: make([]byte, 8), uint64(heapMu): make([]byte, 8), sleep.Addr: make([]byte, 64)}
	// The goroutines as coreexplain reads them from the stopped process.
	var liveGs []int64
	live, path, st := dumpService(t, pid, samples, func(p *coredump.Process) { liveGs = goroutineIDs(t, p) })
	assertRunning(t, s, "after dump")
	fi, _ := os.Stat(path)
	t.Logf("core: %d bytes (%d KiB on disk), %d threads, %d mappings, %d bytes of memory, %d unreadable, frozen %v",
		st.Bytes, fi.Sys().(*syscall.Stat_t).Blocks/2, st.Threads, st.Mappings, st.Memory, st.Unreadable, live.Frozen())
	if fi.Size() != st.Bytes || st.Threads != len(live.Threads) || st.Mappings != len(live.Mappings) {
		t.Errorf("stats %+v, file %d bytes", st, fi.Size())
	}

	c, err := coredump.Open(path, "", coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Exe == nil || c.Exe.Status != coredump.ImageVerified || c.Exe.HostPath != s.Binary {
		t.Errorf("core's executable: %+v", c.Exe)
	}
	if si := c.Signal; si == nil || si.Signo != coredump.SIGSTOP || si.CodeName() != "SI_USER" || int(si.PID) != os.Getpid() {
		t.Errorf("NT_SIGINFO %+v, want SIGSTOP SI_USER from %d", si, os.Getpid())
	}
	// pr_psargs holds the first 80 bytes of the command line.
	if c.PID != pid || c.Command != "live-mutex-cgo" || len(c.Args) != 1 || !strings.HasPrefix(s.Binary, c.Args[0]) || c.PPID != os.Getpid() {
		t.Errorf("NT_PRPSINFO: pid %d ppid %d command %q args %q", c.PID, c.PPID, c.Command, c.Args)
	}
	if len(c.Threads) != len(live.Threads) {
		t.Fatalf("core has %d threads, live %d", len(c.Threads), len(live.Threads))
	}
	for i, th := range c.Threads {
		lt := live.Threads[i]
		if th.TID != lt.TID || th.TP() != lt.TP() || !th.HasFP || !equalU64(th.Regs.Values, lt.Regs.Values) {
			t.Errorf("thread %d: core tid %d tp %#x regs %x; live tid %d tp %#x regs %x",
				i, th.TID, th.TP(), th.Regs.Values, lt.TID, lt.TP(), lt.Regs.Values)
		}
	}
	for addr, want := range samples {
		got := make([]byte, len(want))
		if _, err := c.ReadMemory(got, addr); err != nil || !bytes.Equal(got, want) {
			t.Errorf("memory at %#x: % x (%v), live % x", addr, got, err, want)
		}
	}
	// Unlike a kernel core, every readable mapping is stored whole, code
	// included; PROT_NONE reservations are described, not stored.
	for i, m := range c.Mappings {
		lm := live.Mappings[i]
		if m.Start != lm.Start || m.End != lm.End || m.Perm != lm.Perm {
			t.Fatalf("mapping %d: core %v, live %v", i, m, lm)
		}
		want := m.Size()
		if m.Perm&coredump.PermRead == 0 || lm.Path == "[vvar]" || lm.Path == "[vvar_vclock]" {
			want = 0
		}
		if m.Dumped != want {
			t.Errorf("%v (%s): %d bytes stored, want %d", m, lm.Path, m.Dumped, want)
		}
	}
	if len(c.Files) == 0 || c.Files[0].Path != s.Binary {
		t.Errorf("NT_FILE: %v", c.Files)
	}

	// coreexplain reads the same goroutines from the core.
	if coreGs := goroutineIDs(t, c); len(liveGs) < 47 || !slices.Equal(coreGs, liveGs) {
		t.Errorf("goroutines: live %v, core %v", liveGs, coreGs)
	}

	// Delve reads the same threads and the same goroutines.
	tgt, err := c.Delve()
	if err != nil {
		t.Fatal(err)
	}
	var dtids []int
	for _, th := range tgt.ThreadList() {
		dtids = append(dtids, th.ThreadID())
		regs, err := th.Registers()
		if err != nil {
			t.Fatal(err)
		}
		if lt := live.Thread(th.ThreadID()); lt == nil || regs.PC() != lt.Regs.PC() || regs.SP() != lt.Regs.SP() || regs.TLS() != lt.TP() {
			t.Errorf("Delve: thread %d registers differ", th.ThreadID())
		}
	}
	sort.Ints(dtids)
	if len(dtids) != len(live.Threads) {
		t.Errorf("Delve sees threads %v", dtids)
	}
	gs, _, err := proc.GoroutinesInfo(tgt, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var delveGs []int64
	for _, g := range gs {
		// Delve lists the extra M's g of a cgo program, whose status
		// Go 1.26 calls _Gdeadextra (src/runtime/runtime2.go); Delve
		// v1.27.2 filters only _Gdead (pkg/proc/variables.go).
		if g.Status != 11 {
			delveGs = append(delveGs, g.ID)
		}
	}
	slices.Sort(delveGs)
	if !slices.Equal(delveGs, liveGs) {
		t.Errorf("goroutines: Delve %v, live %v", delveGs, liveGs)
	}
	count := map[string]int{}
	for _, g := range gs {
		frames, err := proc.GoroutineStacktrace(tgt, g, 32, 0)
		if err != nil {
			continue
		}
		for _, fr := range frames {
			if fr.Call.Fn != nil && strings.HasPrefix(fr.Call.Fn.Name, "main.") && !strings.HasPrefix(fr.Call.Fn.Name, "main._C") {
				count[fr.Call.Fn.Name]++
				break
			}
		}
	}
	facts := s.Oracle.Facts
	for fn, key := range map[string]string{facts["waiter"][0]: "waiters", facts["heap_mutex_waiter"][0]: "heap_mutex_waiters"} {
		if want, _ := strconv.Atoi(facts[key][0]); count[fn] != want {
			t.Errorf("Delve: %d goroutines in %s, want %d (%v)", count[fn], fn, want, count)
		}
	}
	for _, fn := range []string{facts["holder"][0], facts["heap_mutex_holder"][0], facts["chan_waiter"][0], "main.main"} {
		if count[fn] != 1 {
			t.Errorf("Delve: %d goroutines in %s, want 1", count[fn], fn)
		}
	}

	// gdb reads it too: every thread, and the holder's C frame.
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skip("gdb not installed")
	}
	out, err := exec.Command("gdb", "-nx", "-batch", "-ex", "info threads", "-ex", "thread apply all bt", s.Binary, path).CombinedOutput()
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
	lwps := regexp.MustCompile(`\(LWP (\d+)\)`).FindAllStringSubmatch(string(out), -1)
	seen := map[string]bool{}
	for _, m := range lwps {
		seen[m[1]] = true
	}
	if len(seen) != len(live.Threads) {
		t.Errorf("gdb sees %d threads, want %d:\n%s", len(seen), len(live.Threads), out)
	}
	if cfn := facts["holder_c_function"][0]; !strings.Contains(string(out), " "+cfn+" (") {
		t.Errorf("gdb's backtraces lack %s:\n%s", cfn, out)
	}
}

// goroutineIDs are the goroutines coreexplain reads in p, sorted.
func goroutineIDs(t *testing.T, p *coredump.Process) []int64 {
	t.Helper()
	rt, err := goruntime.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, g := range rt.Gs {
		ids = append(ids, g.ID)
	}
	slices.Sort(ids)
	return ids
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
