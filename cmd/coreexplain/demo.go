package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/spf13/pflag"
)

type demoFlags struct {
	list bool
	out  reportFlags
	core coreFlags // only --progress: the demo makes its own core
}

func init() {
	register(&command{
		name:  "demo",
		short: "crash a built-in example into a core and explain it",
		usage: "demo [flags] [FIXTURE]",
		summary: "Build one of the repository's crash programs, crash it into a real core dump and\n" +
			"explain it. Run from a checkout of the repository; the default fixture is go-nil-field.",
		examples: []string{
			"coreexplain demo",
			"coreexplain demo cgo-null-write",
			"coreexplain demo --list",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			f := new(demoFlags)
			fs.BoolVar(&f.list, "list", false, "list the fixtures and exit")
			f.out.add(fs, "show every goroutine's full stack and the runtime's crash-handling frames")
			f.core.progress.add(fs)
			return f.run
		},
	})
}

func (f *demoFlags) run(e *env, args []string) int {
	if f.list {
		names, err := fixtures.List()
		if err != nil {
			return fail(e, err)
		}
		for _, n := range names {
			fx, err := fixtures.Load(n)
			if err != nil {
				return fail(e, err)
			}
			fmt.Fprintf(e.stdout, "%-24s %s\n", n, fx.Spec.Description)
		}
		return exitOK
	}
	if err := f.out.check(); err != nil {
		return fail(e, err)
	}
	name := "go-nil-field"
	switch len(args) {
	case 0:
	case 1:
		name = args[0]
	default:
		return fail(e, usageError{"demo takes at most one FIXTURE"})
	}
	if _, err := os.Stat(fixtures.Root()); err != nil {
		return fail(e, fmt.Errorf("demo needs the fixtures/ folder of the coreexplain checkout this binary was built from (%s), which is gone: run it from a checkout, as go run ./cmd/coreexplain demo", fixtures.Root()))
	}
	fx, err := fixtures.Load(name)
	if err != nil {
		return fail(e, err)
	}
	fmt.Fprintf(e.stderr, "demo: %s — %s\n", name, fx.Spec.Description)
	fmt.Fprintf(e.stderr, "demo: building and crashing it (GOTRACEBACK=crash, ulimit -c unlimited)...\n")
	c, err := fx.Crash(fixtures.Default)
	if err != nil {
		return fail(e, err)
	}
	fmt.Fprintf(e.stderr, "demo: the program died (%s); the runtime printed:\n", c.Status)
	for _, l := range firstLines(c.Stderr, 4) {
		fmt.Fprintf(e.stderr, "demo:   %s\n", l)
	}
	fmt.Fprintf(e.stderr, "demo: coreexplain %s %s\n\n", c.Core, c.Binary)
	p, err := f.core.open(e, c.Core, c.Binary)
	if err != nil {
		return fail(e, err)
	}
	defer p.Close()
	return f.out.write(e, report.Build(p, report.Options{All: f.out.all}))
}

func firstLines(s string, n int) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		out = append(out, l)
		if len(out) == n {
			break
		}
	}
	return out
}
