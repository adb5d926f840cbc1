package dlvext_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreexplain/coreexplain/fixtures"
)

// tools are the real dlv, built from the module's pinned Delve, and
// coreexplain, built once per test binary.
var tools struct {
	once             sync.Once
	dir              string
	dlv, coreexplain string
	err              error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tools.dir != "" {
		os.RemoveAll(tools.dir)
	}
	os.Exit(code)
}

func buildTools(t testing.TB) {
	t.Helper()
	tools.once.Do(func() {
		if tools.dir, tools.err = os.MkdirTemp("", "dlvext-test-"); tools.err != nil {
			return
		}
		tools.dlv = filepath.Join(tools.dir, "dlv")
		tools.coreexplain = filepath.Join(tools.dir, "coreexplain")
		for _, b := range [][2]string{
			{tools.dlv, "github.com/go-delve/delve/cmd/dlv"},
			{tools.coreexplain, "github.com/coreexplain/coreexplain/cmd/coreexplain"},
		} {
			if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
				tools.err = fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
				return
			}
		}
	})
	if tools.err != nil {
		t.Fatal(tools.err)
	}
}

func helper(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func skipWithoutMusl(t testing.TB, v fixtures.Variant) {
	t.Helper()
	if v.Musl() {
		if _, err := exec.LookPath(v.CC); err != nil {
			t.Skip("musl-gcc not installed (Debian package musl-tools)")
		}
	}
}

// crash returns a fixture's core, built and crashed once per machine.
func crash(t testing.TB, name string, v fixtures.Variant) *fixtures.Crash {
	t.Helper()
	skipWithoutMusl(t, v)
	f, err := fixtures.Load(name)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("fixture %s is not in this tree", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Crash(v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reportOf writes coreexplain's JSON report on a core (or, with pid, on a
// live process through `coreexplain attach`) into a temporary file.
func reportOf(t testing.TB, args ...string) string {
	t.Helper()
	buildTools(t)
	path := filepath.Join(t.TempDir(), "report.json")
	out, err := exec.Command(tools.coreexplain, args...).Output()
	if err != nil {
		t.Fatalf("coreexplain %s: %v%s", strings.Join(args, " "), err, stderrOf(err))
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return "\n" + string(ee.Stderr)
	}
	return ""
}

// sessionTimeout bounds one debugger session.
const sessionTimeout = 5 * time.Minute

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// sections splits a session's output at the markers printed before each
// command: out[i] is what command i printed.
func sections(t testing.TB, output string, marker *regexp.Regexp, n int) []string {
	t.Helper()
	out := make([]string, n)
	cur := -1
	for _, l := range strings.Split(ansi.ReplaceAllString(output, ""), "\n") {
		if m := marker.FindStringSubmatch(l); m != nil {
			cur, _ = strconv.Atoi(m[1])
			continue
		}
		if cur >= 0 && cur < n {
			out[cur] += l + "\n"
		}
	}
	return out
}

var dlvMarker = regexp.MustCompile(`^"@@@ (\d+)"$`)

// dlv runs the real dlv with coreexplain.star sourced and returns what each
// command printed. args start the session: "core BIN CORE" or "attach PID
// BIN"; an attached process is detached, never killed.
func dlv(t testing.TB, args []string, cmds ...string) []string {
	t.Helper()
	buildTools(t)
	dir := t.TempDir()
	var init strings.Builder
	// As the README says: the helpers sourced by their full path, from a
	// directory that is not the repository.
	init.WriteString("source " + helper(t, "coreexplain.star") + "\n")
	for i, c := range cmds {
		fmt.Fprintf(&init, "print \"@@@ %d\"\n%s\n", i, c)
	}
	init.WriteString("exit\n")
	initFile := filepath.Join(dir, "init")
	if err := os.WriteFile(initFile, []byte(init.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.dlv, append(args, "--init", initFile, "--allow-non-terminal-interactive=true")...)
	cmd.Dir = dir
	// "n" answers "Would you like to kill the process?" when leaving an
	// attached process.
	cmd.Stdin = strings.NewReader("n\n")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "TERM=dumb")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("dlv %s: no exit within %s:\n%s", strings.Join(args, " "), sessionTimeout, out)
	}
	if err != nil {
		t.Fatalf("dlv %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("dlv %s:\n%s", strings.Join(args, " "), ansi.ReplaceAllString(string(out), ""))
	return sections(t, string(out), dlvMarker, len(cmds))
}

var gdbMarker = regexp.MustCompile(`^@@@ (\d+)$`)

// gdb runs the system's gdb with coreexplain.py sourced and returns what
// each command printed. args are gdb's own: "BIN CORE" or "-p PID BIN".
func gdb(t testing.TB, args []string, cmds ...string) []string {
	t.Helper()
	path, err := exec.LookPath("gdb")
	if err != nil {
		t.Skip("gdb is not installed (Debian package gdb)")
	}
	buildTools(t)
	full := []string{"-q", "-batch", "-nx", "-ex", "set python print-stack full", "-ex", "source " + helper(t, "gdb/coreexplain.py")}
	for i, c := range cmds {
		full = append(full, "-ex", fmt.Sprintf("echo @@@ %d\\n", i), "-ex", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append(full, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "COREEXPLAIN="+tools.coreexplain, "HOME="+cmd.Dir)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("gdb %s: no exit within %s:\n%s", strings.Join(args, " "), sessionTimeout, out)
	}
	if err != nil {
		t.Fatalf("gdb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("gdb %s:\n%s", strings.Join(args, " "), out)
	return sections(t, string(out), gdbMarker, len(cmds))
}

// row is one line of a command's table, by column name.
type row map[string]string

// table parses the table a command printed: a header line starting with
// TID and one line per thread, cut at the header's column positions.
func table(t testing.TB, out string) []row {
	t.Helper()
	lines := strings.Split(out, "\n")
	h := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "TID ") {
			h = i
			break
		}
	}
	if h < 0 {
		t.Fatalf("no table in:\n%s", out)
	}
	header := lines[h]
	type col struct {
		name  string
		start int
	}
	var cols []col
	for i := 0; i < len(header); i++ {
		if header[i] != ' ' && (i == 0 || header[i-1] == ' ') {
			j := strings.IndexByte(header[i:], ' ')
			if j < 0 {
				j = len(header) - i
			}
			cols = append(cols, col{header[i : i+j], i})
		}
	}
	var rows []row
	for _, l := range lines[h+1:] {
		if strings.HasPrefix(l, "warning: ") {
			// gdb's own complaints on stderr ("Section `.reg-xstate/N' in
			// core file too small"), printed when a thread's registers
			// are first read, land among the rows.
			continue
		}
		if l == "" || l[0] < '0' || l[0] > '9' {
			break
		}
		r := row{}
		for k, c := range cols {
			end := len(l)
			if k+1 < len(cols) && cols[k+1].start < end {
				end = cols[k+1].start
			}
			if c.start < len(l) {
				r[c.name] = strings.TrimSpace(l[c.start:end])
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func byTID(rows []row) map[int]row {
	m := map[int]row{}
	for _, r := range rows {
		tid, _ := strconv.Atoi(r["TID"])
		m[tid] = r
	}
	return m
}

// crashingM is the M column of the row gm marks crashing.
func crashingM(t testing.TB, gm string) string {
	t.Helper()
	var ms []string
	for _, r := range table(t, gm) {
		if strings.Contains(r["STATE"], "crashing") {
			ms = append(ms, r["M"])
		}
	}
	if len(ms) != 1 {
		t.Fatalf("gm marks %d threads crashing:\n%s", len(ms), gm)
	}
	return ms[0]
}

// checkCrashingM: gm marks the M the runtime named for the crash.
func checkCrashingM(t testing.TB, what, gm string, c *fixtures.Crash) {
	t.Helper()
	if m, want := crashingM(t, gm), oracleM(t, c); m != want {
		t.Errorf("%s: crashing thread's M %s, the runtime said m=%s", what, m, want)
	}
}

// checkErrno: errno shows every thread's errno the fixture set, next to
// its tid, and flags the thread whose errno the crash path overwrote.
func checkErrno(t testing.TB, out string, facts map[string][]string) {
	t.Helper()
	rows := byTID(table(t, out))
	for tid, val := range factPairs(t, facts["errno"]) {
		n, _ := strconv.Atoi(val)
		if r := rows[tid]; r["VALUE"] != val || r["NAME"] != errnoName(n) {
			t.Errorf("thread %d: errno %s %s, the fixture set %s:\n%s", tid, r["VALUE"], r["NAME"], val, out)
		}
	}
	if len(facts["errno_at_fault"]) == 0 {
		return
	}
	for tid := range factPairs(t, facts["errno_at_fault"]) {
		if !strings.Contains(rows[tid]["NOTE"], "not the errno at the fault") {
			t.Errorf("thread %d: errno not flagged as overwritten by the crash path:\n%s", tid, out)
		}
	}
}

// errnoName is the Linux name of the errno values the fixtures set.
func errnoName(v int) string {
	return map[int]string{2: "ENOENT", 11: "EAGAIN", 13: "EACCES", 104: "ECONNRESET", 110: "ETIMEDOUT", 111: "ECONNREFUSED"}[v]
}

// oracleM is the M the Go runtime named for the crash: m= on its signal
// line for a fault in C or the runtime, else m= of the crashing goroutine.
func oracleM(t testing.TB, c *fixtures.Crash) string {
	t.Helper()
	o := c.Oracle
	if o.SigM >= 0 {
		return strconv.Itoa(o.SigM)
	}
	if o.GoroutineM >= 0 {
		return strconv.Itoa(o.GoroutineM)
	}
	t.Fatalf("the runtime printed no m= for %s", c.Fixture.Name)
	return ""
}

// factPairs parses FACT lines of the form key=TID:VALUE.
func factPairs(t testing.TB, facts []string) map[int]string {
	t.Helper()
	m := map[int]string{}
	for _, f := range facts {
		tid, v, ok := strings.Cut(f, ":")
		n, err := strconv.Atoi(tid)
		if !ok || err != nil {
			t.Fatalf("bad FACT %q", f)
		}
		m[n] = v
	}
	if len(m) == 0 {
		t.Fatal("the fixture printed no such FACT")
	}
	return m
}

func fact(t testing.TB, c map[string][]string, key string) string {
	t.Helper()
	if len(c[key]) == 0 {
		t.Fatalf("no FACT %s", key)
	}
	return c[key][0]
}

func mustContain(t testing.TB, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: missing %q in:\n%s", what, w, out)
		}
	}
}

// service is a live fixture process.
type service struct {
	pid    int
	binary string
	facts  map[string][]string
}

// startLive builds and starts a live fixture, waits for its "FACT ready=1"
// and kills it when the test ends, after checking that the debuggers left
// it running.
func startLive(t testing.TB, name string, v fixtures.Variant) *service {
	t.Helper()
	skipWithoutMusl(t, v)
	f, err := fixtures.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := f.Build(v)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		pw.Close()
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var out strings.Builder
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s exited before it was ready:\n%s", name, out.String())
			}
			out.WriteString(l + "\n")
			if l == "FACT ready=1" {
				go func() { // keep draining, the process must never block on its output
					for range lines {
					}
				}()
				s := &service{pid: cmd.Process.Pid, binary: bin, facts: fixtures.ParseOracle(out.String()).Facts}
				t.Cleanup(func() { s.checkRunning(t) })
				return s
			}
		case <-timeout:
			t.Fatalf("%s was not ready within a minute:\n%s", name, out.String())
		}
	}
}

// checkRunning fails the test unless the process is alive and neither
// stopped nor traced: a debugger must leave it as it found it.
func (s *service) checkRunning(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(s.pid, 0); err != nil {
		t.Errorf("process %d is gone after the debuggers: %v", s.pid, err)
		return
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		t.Errorf("process %d: %v", s.pid, err)
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "State:"); ok && strings.ContainsAny(strings.Fields(v)[0], "TtZX") {
			t.Errorf("process %d is %s after the debuggers", s.pid, strings.TrimSpace(v))
		}
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok && strings.TrimSpace(v) != "0" {
			t.Errorf("process %d is still traced by %s", s.pid, strings.TrimSpace(v))
		}
	}
}
