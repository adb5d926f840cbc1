package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/spf13/pflag"
)

type explainFlags struct {
	core coreFlags
	out  reportFlags
}

func init() {
	register(&command{
		name:  "explain",
		short: "explain why the process that left a core died",
		usage: "[explain] [flags] CORE [BINARY]",
		summary: "Explain why the process that left CORE died: the real signal behind the Go runtime's\n" +
			"re-raise, the crash site through C and Go frames, and findings with evidence.\n" +
			"BINARY defaults to the executable recorded in the core; BINARY CORE, the order of dlv\n" +
			"and gdb, is taken too.",
		examples: []string{
			"coreexplain core.1234 ./server",
			"coreexplain explain ./server core.1234",
			"coreexplain --json core.1234 ./server > report.json",
			"coreexplain --all --sysroot /srv/container-root core.1234",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			f := new(explainFlags)
			f.out.add(fs, "show every goroutine's full stack and the runtime's crash-handling frames")
			f.core.add(fs)
			return f.run
		},
	})
}

func (f *explainFlags) run(e *env, args []string) int {
	if len(args) == 0 {
		// A first look at the tool: the help, not an error.
		printUsage(e.stdout, e.cmd, e.fs)
		return exitOK
	}
	if s := suggestCommand(e, args[0]); s != "" {
		return fail(e, usageError{s})
	}
	core, binary, err := coreArgs(args)
	if err != nil {
		return fail(e, err)
	}
	if err := f.out.check(); err != nil {
		return fail(e, err)
	}
	p, err := f.core.open(e, core, binary)
	if err != nil {
		return fail(e, err)
	}
	defer p.Close()
	return f.out.write(e, report.Build(p, report.Options{All: f.out.all}))
}

// suggestCommand is the usage error for a first argument that is no file
// but looks like a mistyped subcommand ("goroutine", "thread"), or "".
func suggestCommand(e *env, arg string) string {
	if _, err := os.Stat(arg); err == nil || e.root == nil {
		return ""
	}
	var names []string
	for _, c := range e.root.Commands() {
		if !c.Hidden && c.Name() != "help" && (strings.HasPrefix(c.Name(), arg) || strings.HasPrefix(arg, c.Name())) {
			names = append(names, c.Name())
		}
	}
	names = append(names, e.root.SuggestionsFor(arg)...)
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("%s is neither a file nor a subcommand; did you mean %s?", arg, names[0])
}

// reportFlags are the output flags of the commands that print a report.
type reportFlags struct {
	json, md, all bool
	color         string
}

func (r *reportFlags) add(fs *pflag.FlagSet, allUsage string) {
	fs.BoolVar(&r.json, "json", false, "print the report as JSON (schema coreexplain/v1)")
	fs.BoolVar(&r.md, "markdown", false, "print the report as Markdown")
	fs.BoolVar(&r.all, "all", false, allUsage)
	fs.StringVar(&r.color, "color", "auto", "colour the text report: auto, always or never")
}

// check rejects bad output flags before anything is opened, so that a live
// target is never stopped for a typo.
func (r *reportFlags) check() error {
	if r.color != "auto" && r.color != "always" && r.color != "never" {
		return usageError{"--color must be auto, always or never"}
	}
	if r.json && r.md {
		return usageError{"--json and --markdown exclude each other"}
	}
	return nil
}

// write prints rep as JSON, Markdown or text. A report that explains
// nothing (report.Unexplained) exits 2 with the reason on stderr; its JSON
// is still printed, for the notes and input facts it carries, but no text
// or Markdown story with nothing in it.
func (r *reportFlags) write(e *env, rep *report.Report) int {
	empty := rep.Unexplained()
	switch {
	case r.json:
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(e, err)
		}
	case empty != "":
	case r.md:
		report.WriteMarkdown(e.stdout, rep)
	default:
		report.WriteText(e.stdout, rep, report.TextOptions{Color: useColor(r.color, e.stdout), All: r.all, Width: textWidth(e.stdout)})
	}
	if empty != "" {
		return fail(e, errors.New(empty))
	}
	return exitOK
}
