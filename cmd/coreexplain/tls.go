package main

import (
	"encoding/json"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/spf13/pflag"
)

type tlsFlags struct {
	core  coreFlags
	json  bool
	color string
}

func init() {
	register(&command{
		name:  "tls",
		short: "each thread's C runtime state: TLS, errno",
		usage: "tls [flags] CORE [BINARY]",
		summary: "Show each thread's C runtime state: thread pointer, TCB, TLS blocks and errno.\n" +
			"errno comes with its slot address, value and name, and how the slot was computed from\n" +
			"the code of every __errno_location in the process; the C libraries present are listed.",
		examples: []string{
			"coreexplain tls core.1234 ./server",
			"coreexplain tls --json core.1234 ./server | jq '.threads[] | {tid, errno}'",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			f := new(tlsFlags)
			fs.BoolVar(&f.json, "json", false, "print the view as JSON (schema coreexplain-tls/v1)")
			fs.StringVar(&f.color, "color", "auto", "colour the text: auto, always or never")
			f.core.add(fs)
			return f.run
		},
	})
}

func (f *tlsFlags) run(e *env, args []string) int {
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
	r, err := report.BuildTLS(p)
	if err != nil {
		return fail(e, err)
	}
	if f.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return fail(e, err)
		}
		return exitOK
	}
	report.WriteTLSText(e.stdout, r, report.TextOptions{Color: useColor(f.color, e.stdout)})
	return exitOK
}
