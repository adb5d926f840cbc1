package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// spillCommand is coreexplain built so that no decompressed core fits in
// memory: every copy goes to the temporary directory.
func spillCommand(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "coreexplain-spill")
	cmd := exec.Command("go", "build", "-o", bin,
		"-ldflags=-X github.com/coreexplain/coreexplain/coredump.memoryLimit=0", ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// zstdCopy writes core zstd-compressed into dir, as systemd-coredump
// stores it.
func zstdCopy(t *testing.T, core, dir, name string) string {
	t.Helper()
	start := time.Now()
	z := filepath.Join(dir, name+".zst")
	fixturetest.CompressZstd(t, core, z)
	st, _ := os.Stat(z)
	t.Logf("compressed %s to %d bytes in %v", core, st.Size(), time.Since(start).Round(time.Millisecond))
	return z
}

// decompressedCopy looks through the descriptors of process pid for the
// decompressed core: a memfd, or a file without a name in tmp (proc(5)).
// It returns the copy's size so far.
func decompressedCopy(pid int, tmp string) (size int64, inTmp, ok bool) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, _ := os.ReadDir(dir)
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil {
			continue
		}
		memfd := strings.HasPrefix(l, "/memfd:coreexplain-core")
		if !memfd && !strings.HasPrefix(l, tmp+"/") {
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, fd.Name())); err == nil {
			return st.Size(), !memfd, true
		}
	}
	return 0, false, false
}

// exited reports whether process pid, a child not yet waited for, has
// ended (a zombie, state Z in /proc/PID/stat, proc(5)).
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The command name in parentheses may hold ") " itself.
	i := bytes.LastIndex(b, []byte(") "))
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

// fitsInMemory reports whether a decompressed core of size bytes is held
// in memory here: when it takes at most half of MemAvailable (proc(5)).
func fitsInMemory(size int64) bool {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "MemAvailable: %d kB", &kb); err == nil {
			return size <= kb<<10/2
		}
	}
	return false
}

// leftIn fails t when dir holds anything.
func leftIn(t *testing.T, what, dir string) {
	t.Helper()
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		t.Errorf("%s left %s in TMPDIR", what, n.Name())
	}
}

// withoutInput is a JSON report without the fields that name the input.
func withoutInput(t *testing.T, out string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("report is not JSON: %v\n%.300s", err, out)
	}
	delete(m, "input")
	b, _ := json.MarshalIndent(m, "", " ")
	return string(b)
}

// TestCompressedCoreInterrupted runs coreexplain on zstd-compressed cores
// with TMPDIR a fresh empty directory and ends it every way a user does:
// SIGINT and SIGTERM at once, after 20 and 100 ms, and while the copy is
// being decompressed (seen growing in /proc/PID/fd); its stdout closed
// like `| head -1`; and a run left to finish. TMPDIR must be empty after
// each. Both ways of holding the copy are run: in memory, and (by a build
// that allows no memory) in a file in TMPDIR.
func TestCompressedCoreInterrupted(t *testing.T) {
	small := fixturetest.MustCrash(t, "go-nil-field", fixtures.Default)
	cores := t.TempDir()
	type input struct {
		name, z, binary, plain string
		size                   int64
	}
	inputs := []input{{name: "go-nil-field", z: zstdCopy(t, small.Core, cores, "go-nil-field"), binary: small.Binary, plain: small.Core}}
	if !testing.Short() {
		big := fixturetest.MustCrash(t, "go-many-goroutines", fixtures.Default)
		inputs = append(inputs, input{name: "go-many-goroutines", z: zstdCopy(t, big.Core, cores, "go-many-goroutines"), binary: big.Binary, plain: big.Core})
	}
	for i := range inputs {
		st, err := os.Stat(inputs[i].plain)
		if err != nil {
			t.Fatal(err)
		}
		inputs[i].size = st.Size()
	}
	commands := []struct {
		name, bin string
		inTmp     bool // the copy is a file in TMPDIR
	}{
		{"memory", builtCommand(t), false},
		{"file", spillCommand(t), true},
	}
	for _, in := range inputs {
		plain := exec.Command(builtCommand(t), "--json", in.plain, in.binary)
		out, err := plain.Output()
		if err != nil {
			t.Fatalf("coreexplain on the plain %s core: %v", in.name, err)
		}
		want := withoutInput(t, string(out))
		for _, c := range commands {
			t.Run(in.name+"/"+c.name, func(t *testing.T) {
				start := func(stdout, stderr io.Writer, args ...string) (*exec.Cmd, string) {
					tmp := t.TempDir()
					cmd := exec.Command(c.bin, append(args, in.z, in.binary)...)
					cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
					cmd.Stdout, cmd.Stderr = stdout, stderr
					if err := cmd.Start(); err != nil {
						t.Fatal(err)
					}
					return cmd, tmp
				}
				// A run left to finish reports what the plain core says.
				var out, stderr bytes.Buffer
				began := time.Now()
				cmd, tmp := start(&out, &stderr, "--json")
				if err := cmd.Wait(); err != nil {
					t.Fatalf("finished run: %v\n%s", err, stderr.String())
				}
				t.Logf("finished run: %v", time.Since(began).Round(time.Millisecond))
				leftIn(t, "the finished run", tmp)
				if got := withoutInput(t, out.String()); got != want {
					t.Errorf("the report of the compressed core differs from the plain core's:\n%s", firstLineDiff(got, want))
				}

				ended := func(what string, cmd *exec.Cmd, tmp string) {
					t.Helper()
					err := cmd.Wait()
					if err == nil || cmd.ProcessState.Success() {
						t.Errorf("%s: exit status 0, want non-zero", what)
					}
					leftIn(t, what, tmp)
				}
				for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
					for _, after := range []time.Duration{0, 20 * time.Millisecond, 100 * time.Millisecond} {
						cmd, tmp := start(io.Discard, io.Discard)
						time.Sleep(after)
						cmd.Process.Signal(sig)
						ended(fmt.Sprintf("%v after %v", sig, after), cmd, tmp)
					}
					// While the copy grows: seen part-written in
					// /proc/PID/fd, where it is meant to be.
					cmd, tmp := start(io.Discard, io.Discard)
					var seen int64
					busy := int64(0) // a big core is caught in mid-stream
					if in.size > 100<<20 {
						busy = in.size / 4
					}
					for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !exited(cmd.Process.Pid); {
						size, inTmp, ok := decompressedCopy(cmd.Process.Pid, tmp)
						if ok && inTmp && !c.inTmp && fitsInMemory(in.size) {
							t.Errorf("the copy went to TMPDIR although memory holds it")
							break
						}
						// The head of the core is decoded into memory
						// before its size is known, and moves to TMPDIR
						// after: look for where the rest goes.
						if ok && inTmp == c.inTmp && size > busy && size < in.size {
							seen = size
							break
						}
						time.Sleep(200 * time.Microsecond)
					}
					cmd.Process.Signal(sig)
					what := fmt.Sprintf("%v while decompressing", sig)
					ended(what, cmd, tmp)
					if seen == 0 {
						// A small core may decompress between two looks;
						// the big one cannot.
						if in.size > 100<<20 {
							t.Errorf("%s: the copy was never seen part-written", what)
						}
					} else {
						t.Logf("%s: signalled at %d of %d bytes", what, seen, in.size)
					}
				}
				// | head -1: the reader goes away after one line of a
				// report far longer than a pipe holds, or, for a small
				// one, before any.
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				cmd, tmp = start(w, io.Discard, "--all")
				w.Close()
				if in.size > 100<<20 {
					line, err := bufio.NewReader(r).ReadString('\n')
					if err != nil || line == "" {
						t.Errorf("| head -1 read %q: %v", line, err)
					}
				}
				r.Close()
				ended("stdout closed early", cmd, tmp)
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGPIPE {
					t.Errorf("stdout closed early: %v, want death by SIGPIPE", cmd.ProcessState)
				}
			})
		}
	}
}

// firstLineDiff is the first line where a and b differ.
func firstLineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d: %s\nwant: %s", i+1, al[i], bl[i])
		}
	}
	return "lengths differ"
}
