package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/spf13/pflag"
)

type threadsFlags struct {
	core   coreFlags
	json   bool
	frames bool
	color  string
}

func init() {
	register(&command{
		name:    "threads",
		short:   "OS threads with their Ms and goroutines",
		usage:   "threads [flags] CORE [BINARY]",
		summary: "List the OS threads with their Ms, goroutines and what each did before the crash",
		examples: []string{
			"coreexplain threads core.1234 ./server",
			"coreexplain threads --frames core.1234",
			"coreexplain threads --json core.1234 | jq '.[] | select(.state == \"in-cgo\")'",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			f := new(threadsFlags)
			fs.BoolVar(&f.json, "json", false, "print the threads as JSON (the report's threads section)")
			fs.BoolVar(&f.frames, "frames", false, "show each thread's stack, signal handlers and crash machinery included")
			fs.StringVar(&f.color, "color", "auto", "colour the output: auto, always or never")
			f.core.add(fs)
			return f.run
		},
	})
}

func (f *threadsFlags) run(e *env, args []string) int {
	core, binary, err := coreArgs(args)
	if err != nil {
		return fail(e, err)
	}
	p, err := f.core.open(e, core, binary)
	if err != nil {
		return fail(e, err)
	}
	defer p.Close()
	r := report.Build(p, report.Options{All: f.frames})
	if f.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r.Threads); err != nil {
			return fail(e, err)
		}
		return exitOK
	}
	writeThreads(e.stdout, r, f.frames, useColor(f.color, e.stdout))
	return exitOK
}

func writeThreads(w io.Writer, r *report.Report, frames, color bool) {
	bold := func(s string) string {
		if color {
			return "\x1b[1m" + s + "\x1b[0m"
		}
		return s
	}
	fmt.Fprintf(w, "%s\n", bold(fmt.Sprintf("%d threads of pid %d", len(r.Threads), r.Process.PID)))
	fmt.Fprintf(w, "  %-8s %-5s %-7s %-11s %-18s %-16s %s\n", "TID", "M", "G", "STATE", "TP", "ERRNO", "FUNCTION")
	for _, th := range r.Threads {
		m, g, errno := "-", "-", "-"
		if th.M != nil {
			m = fmt.Sprint(*th.M)
		}
		if th.Goroutine != 0 {
			g = fmt.Sprint(th.Goroutine)
		}
		if th.Errno != nil {
			errno = fmt.Sprintf("%d %s", th.Errno.Value, th.Errno.Name)
		}
		mark := " "
		if th.Crashing {
			mark = "*"
		}
		fmt.Fprintf(w, "%s %-8d %-5s %-7s %-11s %-18s %-16s %s\n", mark, th.TID, m, g, th.State, th.TP, errno, th.Function)
		for _, n := range th.Notes {
			fmt.Fprintf(w, "      note: %s\n", n)
		}
		if frames {
			for _, fr := range th.Frames {
				fmt.Fprintf(w, "      %s\n", frameLine(fr))
			}
		}
	}
	fmt.Fprintf(w, "\n* crashing thread; states are what each thread did before the crash signals arrived\n")
}

// frameLine renders one frame on one line.
func frameLine(fr report.Frame) string {
	name := fr.Function
	if name == "" {
		name = "?"
	}
	if fr.Module != "" {
		name = fr.Module + "`" + name
	}
	var tags []string
	if fr.Inlined {
		tags = append(tags, "inlined")
	}
	if fr.TailCall {
		tags = append(tags, "tail call")
	}
	if fr.Plumbing {
		tags = append(tags, "crash machinery")
	}
	if fr.Kind == "signal" {
		tags = append(tags, "signal frame")
	}
	s := name
	if fr.File != "" {
		s += fmt.Sprintf(" %s:%d", fr.File, fr.Line)
	}
	s += " " + fr.PC.String()
	if len(tags) > 0 {
		s += " [" + strings.Join(tags, ", ") + "]"
	}
	return s
}
