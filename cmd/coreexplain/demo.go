package main

import (
	"fmt"
	"strings"

	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/spf13/pflag"
)

var demoFlags struct {
	list  bool
	json  bool
	all   bool
	color string
}

func init() {
	register(&command{
		name:  "demo",
		usage: "demo [flags] [FIXTURE]",
		summary: "Build one of the repository's crash programs, crash it into a real core dump and\n" +
			"explain it. Run from a checkout of the repository; the default fixture is go-nil-field.",
		examples: []string{
			"coreexplain demo",
			"coreexplain demo cgo-null-write",
			"coreexplain demo --list",
		},
		flags: func(fs *pflag.FlagSet) {
			f := &demoFlags
			fs.BoolVar(&f.list, "list", false, "list the fixtures and exit")
			fs.BoolVar(&f.json, "json", false, "print the report as JSON")
			fs.BoolVar(&f.all, "all", false, "show every goroutine's full stack and the crash-handling frames")
			fs.StringVar(&f.color, "color", "auto", "colour the text report: auto, always or never")
		},
		run: runDemo,
	})
}

func runDemo(e *env, args []string) int {
	f := &demoFlags
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
	name := "go-nil-field"
	switch len(args) {
	case 0:
	case 1:
		name = args[0]
	default:
		return fail(e, usageError{"demo takes at most one FIXTURE"})
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
	explainFlags.json, explainFlags.all, explainFlags.color = f.json, f.all, f.color
	return runExplain(e, []string{c.Core, c.Binary})
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
