package main

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/spf13/pflag"
)

type goroutinesFlags struct {
	core  coreFlags
	json  bool
	all   bool
	state string
	grep  string
	color string
}

func init() {
	register(&command{
		name:    "goroutines",
		short:   "goroutines grouped by identical stack",
		usage:   "goroutines [flags] CORE [BINARY]",
		summary: "Group goroutines by identical stack and state, the crashing group and biggest first",
		examples: []string{
			"coreexplain goroutines core.1234 ./server",
			"coreexplain goroutines --state 'chan receive' core.1234",
			"coreexplain goroutines --grep 'database/sql' --all core.1234",
			"coreexplain goroutines --json core.1234 > goroutines.json",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			f := new(goroutinesFlags)
			fs.BoolVar(&f.json, "json", false, "print the goroutines section of the report as JSON")
			fs.BoolVar(&f.all, "all", false, "every group and every frame, the runtime's own included")
			fs.StringVar(&f.state, "state", "", "only groups whose state or wait reason contains `STATE`")
			fs.StringVar(&f.grep, "grep", "", "only groups with a frame whose function matches the regular expression `FUNC`")
			fs.StringVar(&f.color, "color", "auto", "colour the output: auto, always or never")
			f.core.add(fs)
			return f.run
		},
	})
}

func (f *goroutinesFlags) run(e *env, args []string) int {
	core, binary, err := coreArgs(args)
	if err != nil {
		return fail(e, err)
	}
	var re *regexp.Regexp
	if f.grep != "" {
		if re, err = regexp.Compile(f.grep); err != nil {
			return fail(e, usageError{fmt.Sprintf("--grep: %v", err)})
		}
	}
	p, err := f.core.open(e, core, binary)
	if err != nil {
		return fail(e, err)
	}
	defer p.Close()
	r := report.Build(p, report.Options{All: f.all || f.grep != "" || f.state != ""})
	g := r.Goroutines
	if g == nil {
		// Say why: a Go runtime that cannot be read (a truncated core) is
		// not the absence of one.
		for _, n := range r.Notes {
			if rest, ok := strings.CutPrefix(n, "Go runtime unreadable: "); ok {
				return fail(e, fmt.Errorf("%s: the Go runtime cannot be read: %s", core, rest))
			}
		}
		if p.Exe != nil && !p.Exe.Status.Usable() {
			return fail(e, fmt.Errorf("%s: goroutines are not read through %s: it does not match the core", core, p.Exe.HostPath))
		}
		return fail(e, fmt.Errorf("%s: no Go runtime in the process", core))
	}
	g.Buckets = filterBuckets(g.Buckets, f.state, re)
	if f.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(g); err != nil {
			return fail(e, err)
		}
		return exitOK
	}
	writeGoroutines(e.stdout, g, f.all, useColor(f.color, e.stdout))
	return exitOK
}

func filterBuckets(bs []report.Bucket, state string, re *regexp.Regexp) []report.Bucket {
	var out []report.Bucket
	for _, b := range bs {
		if state != "" && !strings.Contains(b.State, state) && !strings.Contains(b.WaitReason, state) {
			continue
		}
		if re != nil {
			hit := false
			for _, fr := range b.Frames {
				if re.MatchString(fr.Function) {
					hit = true
					break
				}
			}
			if !hit {
				continue
			}
		}
		out = append(out, b)
	}
	return out
}

func writeGoroutines(w io.Writer, g *report.Goroutines, all, color bool) {
	wrap := func(code, s string) string {
		if color {
			return "\x1b[" + code + "m" + s + "\x1b[0m"
		}
		return s
	}
	var states []string
	for st, n := range g.ByState {
		states = append(states, fmt.Sprintf("%d %s", n, st))
	}
	sort.Strings(states)
	shown := 0
	for _, b := range g.Buckets {
		shown += b.Count
	}
	fmt.Fprintf(w, "%s\n", wrap("1", fmt.Sprintf("%d goroutines (%s); %d groups shown with %d goroutines",
		g.Total, strings.Join(states, ", "), len(g.Buckets), shown)))
	for _, b := range g.Buckets {
		head := fmt.Sprintf("%d× [%s", b.Count, b.State)
		if b.WaitReason != "" {
			head += ": " + b.WaitReason
		}
		if b.WaitMinutes > 0 {
			head += fmt.Sprintf(", %d minutes", b.WaitMinutes)
		}
		if b.Locked {
			head += ", locked to thread"
		}
		head += "]"
		if b.Crashing {
			head = wrap("1;31", head+" crashing")
		}
		ids := make([]string, 0, len(b.IDs))
		for i, id := range b.IDs {
			if i == 10 && !all {
				ids = append(ids, fmt.Sprintf("... (+%d)", b.Count-10))
				break
			}
			ids = append(ids, fmt.Sprint(id))
		}
		fmt.Fprintf(w, "\n%s goroutine %s\n", head, strings.Join(ids, " "))
		for _, fr := range b.Frames {
			fmt.Fprintf(w, "  %s\n", frameLine(fr))
		}
		if b.CreatedBy != nil {
			fmt.Fprintf(w, "  created by %s %s:%d\n", b.CreatedBy.Function, b.CreatedBy.File, b.CreatedBy.Line)
		}
	}
}
