package dlvext_test

import (
	"testing"

	"github.com/coreexplain/coreexplain/fixtures"
)

// The benchmarks time whole debugger sessions on a core: start-up alone,
// and start-up plus explain (with a report), gm, errno, slicecheck and
// addrinfo, so the difference is what the helpers cost.

func benchSession(b *testing.B, run func(b *testing.B, c *fixtures.Crash, cmds ...string)) {
	c := crash(b, "cgo-dangling-slice-field", fixtures.Default)
	report := reportOf(b, "--json", c.Core, c.Binary)
	data := fact(b, c.Oracle.Facts, "data")
	b.Run("startup", func(b *testing.B) {
		for b.Loop() {
			run(b, c)
		}
	})
	b.Run("commands", func(b *testing.B) {
		for b.Loop() {
			run(b, c, "explain "+report, "gm", "errno", "slicecheck main.pending[0].body", "addrinfo "+data)
		}
	})
}

func BenchmarkDelve(b *testing.B) {
	benchSession(b, func(b *testing.B, c *fixtures.Crash, cmds ...string) { dlvCore(b, c, cmds...) })
}

func BenchmarkGdb(b *testing.B) {
	benchSession(b, func(b *testing.B, c *fixtures.Crash, cmds ...string) {
		ce := make([]string, len(cmds))
		for i, cmd := range cmds {
			ce[i] = "ce " + cmd
		}
		gdbCore(b, c, ce...)
	})
}

// BenchmarkLaunch times whole `coreexplain dlv` and `coreexplain gdb`
// sessions: the analysis, the session's files, the debugger's start with
// the helpers bound to the report (which tells the crash story), and gm
// and errno.
func BenchmarkLaunch(b *testing.B) {
	c := crash(b, "cgo-dangling-slice-field", fixtures.Default)
	b.Run("dlv", func(b *testing.B) {
		for b.Loop() {
			launch(b, "dlv", []string{c.Core, c.Binary}, []string{"gm", "errno"})
		}
	})
	b.Run("gdb", func(b *testing.B) {
		for b.Loop() {
			launch(b, "gdb", []string{c.Core, c.Binary, "--", "-batch"}, []string{"ce gm", "ce errno"})
		}
	})
}
