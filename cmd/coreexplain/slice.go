package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/memory"
	"github.com/spf13/pflag"
)

type sliceFlags struct {
	core      coreFlags
	json      bool
	goroutine int64
	frame     int
}

func init() {
	register(&command{
		name:  "slice",
		short: "is a slice's backing array still valid memory?",
		usage: "slice [flags] CORE [BINARY] (EXPR | ADDR:TYPE)",
		summary: "Decode a slice header and check that all of its backing array is still valid memory.\n" +
			"EXPR is a Go expression in a frame's scope (data, cfg.Items, os.Args); ADDR:TYPE reads the\n" +
			"header at ADDR as []TYPE (TYPE as the binary spells it: main.Item, uint8); a *[N]T is\n" +
			"checked as arr[:]. When EXPR cannot be evaluated in the frame (not in scope, or not live\n" +
			"at its pc), the error names a frame where it can. Exit status 0 when the check ran, the\n" +
			"slice valid or DANGLING (see the last line, or dangling in --json); 2 when EXPR cannot be\n" +
			"evaluated or the header read.",
		// The examples run as printed on the cgo-dangling-slice fixture
		// (TestHelpExamples): main.main's data is a slice over a freed
		// C buffer, in frame 5 of the crashing goroutine 1; in the
		// faulting frame main.checksum, data lives in registers the core
		// does not record.
		examples: []string{
			"coreexplain slice --frame 5 core.1234 ./server data",
			"coreexplain slice --goroutine 1 --frame 5 --json core.1234 ./server data > slice.json",
			"coreexplain slice core.1234 ./server os.Args",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			f := new(sliceFlags)
			fs.Int64Var(&f.goroutine, "goroutine", 0, "evaluate in goroutine `N` (default: the crashing goroutine)")
			fs.IntVar(&f.frame, "frame", -1, "evaluate in frame `K` of the goroutine; -1 means the faulting frame, else frame 0")
			fs.BoolVar(&f.json, "json", false, "print the result as JSON")
			f.core.add(fs)
			return f.run
		},
	})
}

var reAddrType = regexp.MustCompile(`^(0[xX][0-9a-fA-F]+|[0-9]+):(.+)$`)

func (f *sliceFlags) run(e *env, args []string) int {
	isSpec := func(s string) bool { return reAddrType.MatchString(s) }
	core, binary, rest, err := splitCoreArgs(args, isSpec)
	if err != nil {
		return fail(e, err)
	}
	switch len(rest) {
	case 0:
		return fail(e, usageError{"missing EXPR or ADDR:TYPE"})
	case 1:
	default:
		return fail(e, usageError{fmt.Sprintf("too many arguments: %q", rest[1:])})
	}
	spec := rest[0]
	p, err := f.core.open(e, core, binary)
	if err != nil {
		return fail(e, err)
	}
	defer p.Close()
	frames, err := memory.GoroutineFrames(p, f.goroutine)
	if err != nil {
		return fail(e, err)
	}
	if len(frames) == 0 {
		return fail(e, fmt.Errorf("goroutine %d has no frames", f.goroutine))
	}
	k := f.frame
	if k < 0 {
		k = 0
		if ft := memory.For(p).CrashFault(); ft != nil && ft.InGo {
			for i, fr := range frames {
				if fr.PC == ft.PC {
					k = i
					break
				}
			}
		}
	}
	if k >= len(frames) {
		return fail(e, usageError{fmt.Sprintf("--frame %d: the goroutine has %d frames", k, len(frames))})
	}
	fr := frames[k]
	sp := memory.For(p)
	var sl *memory.Slice
	typ, addr := "", uint64(0)
	if m := reAddrType.FindStringSubmatch(spec); m != nil {
		a, _ := coredump.ParseAddr(m[1])
		typ, addr = m[2], uint64(a)
		sl, err = sp.SliceAt(fr.Scope, addr, typ)
	} else {
		sl, err = sp.SliceExpr(fr.Scope, spec)
	}
	if err != nil {
		return fail(e, sp.ExplainEval(frames, k, spec, addr, typ, err))
	}
	if f.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		out := struct {
			Frame    int    `json:"frame"`
			Function string `json:"function"`
			*memory.Slice
		}{k, fr.Function, sl}
		if err := enc.Encode(out); err != nil {
			return fail(e, err)
		}
		return exitOK
	}
	name := sl.Name
	if name == "" {
		name = "slice header at " + sl.Header.String()
	}
	w := e.stdout
	fmt.Fprintf(w, "%s %s (frame %d, %s)\n", name, sl.Type, k, fr.Function)
	hdr := "in a register"
	if sl.Header != 0 {
		hdr = "at " + sl.Header.String()
	}
	fmt.Fprintf(w, "  header %s: data %s, len %d, cap %d; %d-byte %s elements\n", hdr, sl.Data, sl.Len, sl.Cap, sl.ElemSize, sl.ElemType)
	if len(sl.Ranges) > 0 {
		fmt.Fprintf(w, "  backing array %s-%s:\n", sl.Data, coredump.Addr(sl.End()))
		for _, r := range sl.Ranges {
			fmt.Fprintf(w, "    %s-%s  %s\n", r.Start, r.End, r.Region.Summary)
		}
	}
	for _, pr := range sl.Problems {
		fmt.Fprintf(w, "  problem: %s\n", pr)
	}
	if sl.Confusion != "" {
		fmt.Fprintf(w, "  suspicious: %s\n", sl.Confusion)
	}
	switch {
	case sl.Dangling:
		fmt.Fprintf(w, "  DANGLING: %s\n", sl.Why)
	case len(sl.Problems) == 0 && sl.Confusion == "":
		fmt.Fprintf(w, "  ok: %s\n", strings.TrimSpace("the header is consistent and the backing array is valid memory"))
	}
	return exitOK
}
