package main

import (
	"encoding/json"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/spf13/pflag"
)

var explainFlags struct {
	core  coreFlags
	json  bool
	md    bool
	all   bool
	color string
}

func init() {
	register(&command{
		name:  "explain",
		usage: "[flags] CORE [BINARY]",
		summary: "Explain why the process that left CORE died: the real signal behind the Go runtime's\n" +
			"re-raise, the crash site through C and Go frames, and findings with evidence.\n" +
			"BINARY defaults to the executable recorded in the core.",
		examples: []string{
			"coreexplain core.1234 ./server",
			"coreexplain --json core.1234 ./server > report.json",
			"coreexplain --all --sysroot /srv/container-root core.1234",
		},
		flags: func(fs *pflag.FlagSet) {
			f := &explainFlags
			fs.BoolVar(&f.json, "json", false, "print the report as JSON (schema coreexplain/v1)")
			fs.BoolVar(&f.md, "markdown", false, "print the report as Markdown")
			fs.BoolVar(&f.all, "all", false, "show every goroutine's full stack and the runtime's crash-handling frames")
			fs.StringVar(&f.color, "color", "auto", "colour the text report: auto, always or never")
			f.core.add(fs)
		},
		run: runExplain,
	})
}

func runExplain(e *env, args []string) int {
	f := &explainFlags
	core, binary, err := coreArgs(args)
	if err != nil {
		return fail(e, err)
	}
	if f.color != "auto" && f.color != "always" && f.color != "never" {
		return fail(e, usageError{"--color must be auto, always or never"})
	}
	p, err := f.core.open(e, core, binary)
	if err != nil {
		return fail(e, err)
	}
	defer p.Close()
	r := report.Build(p, report.Options{All: f.all})
	return writeReport(e, r, f.json, f.md, f.all, f.color)
}

// writeReport prints r as JSON, Markdown or text.
func writeReport(e *env, r *report.Report, asJSON, md, all bool, color string) int {
	switch {
	case asJSON:
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return fail(e, err)
		}
	case md:
		report.WriteMarkdown(e.stdout, r)
	default:
		report.WriteText(e.stdout, r, report.TextOptions{Color: useColor(color, e.stdout), All: all, Width: textWidth(e.stdout)})
	}
	return exitOK
}
