package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/memory"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

// TestHelpExamples runs every help example of every command that reads a
// core, as printed, on the cgo-dangling-slice fixture's core and binary
// (the slice examples are written for it): core.1234 and
// /var/tmp/server.core become the core, ./server the binary,
// /srv/container-root (a sysroot) the root directory; a pipe or a
// redirection ends the command line. Each must exit 0: a dangling slice
// is an answer (its output says DANGLING), not a failure.
func TestHelpExamples(t *testing.T) {
	c := fixturetest.MustCrash(t, "cgo-dangling-slice", fixtures.Default)
	t.Chdir(t.TempDir()) // -o FILE examples write here
	repl := strings.NewReplacer("core.1234", c.Core, "/var/tmp/server.core", c.Core, "./server", c.Binary, "/srv/container-root", "/")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	ran := map[string]int{}
	for _, name := range names {
		for k, ex := range commands[name].examples {
			line := ex
			for _, cut := range []string{" | ", " > "} {
				if i := strings.Index(line, cut); i >= 0 {
					line = line[:i]
				}
			}
			args, err := shellWords(line)
			if err != nil {
				t.Fatalf("%s example %q: %v", name, ex, err)
			}
			if len(args) == 0 || args[0] != "coreexplain" || !readsCore(args) {
				continue
			}
			if name == "dlv" || name == "gdb" {
				// They start a debugger on the terminal: dlvext's
				// TestLaunch* run these command lines in real Delve and
				// gdb.
				continue
			}
			ran[name]++
			for i := range args {
				args[i] = repl.Replace(args[i])
			}
			t.Run(fmt.Sprintf("%s/%d", name, k), func(t *testing.T) {
				code, out, stderr := runCLI(args[1:]...)
				if code != exitOK {
					t.Fatalf("%q: exit %d\nstderr: %s", ex, code, stderr)
				}
				if strings.TrimSpace(out) == "" {
					t.Errorf("%q printed nothing", ex)
				}
				if name == "slice" && !strings.Contains(args[len(args)-1], "os.Args") && !strings.Contains(out, "DANGLING") && !strings.Contains(out, `"dangling": true`) {
					t.Errorf("%q: data is a slice over a freed C buffer, but the output does not say DANGLING:\n%s", ex, out)
				}
			})
		}
	}
	for _, name := range []string{"explain", "threads", "goroutines", "tls", "addr", "slice", "pprof", "dump"} {
		if ran[name] == 0 {
			t.Errorf("no example of %s read a core", name)
		}
	}
	if _, err := os.Stat(filepath.Join(".", "goroutines.pb.gz")); err != nil {
		t.Errorf("the pprof example wrote no goroutines.pb.gz: %v", err)
	}
}

// readsCore reports whether an example reads a core: it names one that is
// not the output of -o (dump writes one), and needs no live process.
func readsCore(args []string) bool {
	reads := false
	for i, a := range args {
		if strings.Contains(a, "$(") {
			return false // a live process's pid
		}
		if (a == "core.1234" || a == "/var/tmp/server.core") && args[i-1] != "-o" && args[i-1] != "--output" {
			reads = true
		}
	}
	return reads
}

// shellWords splits a command line as sh does for the words examples use:
// blanks separate words, single and double quotes group them.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0 && ch == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(ch)
		case ch == '\'' || ch == '"':
			quote, in = ch, true
		case ch == ' ' || ch == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(ch)
			in = true
		}
	}
	if quote != 0 {
		return nil, os.ErrInvalid
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// The slice command gives Delve's errors as what to do next, on one line
// with exit 2: data in the faulting frame lives in registers the core
// does not hold, and the message names the frame where it can be read;
// byte is read as DWARF's uint8.
func TestSliceErrorsCLI(t *testing.T) {
	c := fixturetest.MustCrash(t, "cgo-dangling-slice", fixtures.Default)
	p, err := coredump.Open(c.Core, c.Binary, coredump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	frames, err := memory.GoroutineFrames(p, 0)
	p.Close()
	if err != nil {
		t.Fatal(err)
	}
	k, m := -1, -1
	for i, f := range frames {
		switch {
		case f.Function == "main.checksum" && k < 0:
			k = i
		case f.Function == "main.main" && m < 0:
			m = i
		}
	}
	for _, x := range []struct{ args, want []string }{
		{[]string{"slice", c.Core, c.Binary, "data"}, []string{fmt.Sprintf("coreexplain: data is in a register the core does not record for frame %d (main.checksum) "+
			"(a frame above runtime.sigpanic keeps only what the runtime saved): try --frame %d (main.main, where data evaluates) or ADDR:TYPE with the address of its slice header\n", k, m)}},
		{[]string{"slice", c.Core, c.Binary, "0x10:byte"}, []string{"coreexplain: no slice header can be read at 0x10: 0x10 is in the null page: a nil pointer plus offset 0x10\n"}},
	} {
		code, out, stderr := runCLI(x.args...)
		if code != exitBadInput || out != "" || stderr != x.want[0] {
			t.Errorf("%q: exit %d, stdout %q, stderr %q\nwant exit 2 and %q", x.args[3:], code, out, stderr, x.want[0])
		}
	}
}
