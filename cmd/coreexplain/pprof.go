package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/coreexplain/coreexplain/coredump/pprof"
	"github.com/google/pprof/profile"
	"github.com/spf13/pflag"
)

type pprofFlags struct {
	core      coreFlags
	output    string
	heap      bool
	maxFrames int
}

func init() {
	register(&command{
		name:    "pprof",
		short:   "goroutine or heap profile for go tool pprof",
		usage:   "pprof [flags] CORE [BINARY]",
		summary: "Write a pprof profile for go tool pprof: the goroutines (one sample each, labelled with state, wait reason and id), or with --heap the live heap by type and size class from a scan of every span.",
		examples: []string{
			"coreexplain pprof -o goroutines.pb.gz core.1234 ./server",
			"go tool pprof -top goroutines.pb.gz",
			"go tool pprof -tags -tagfocus wait_reason='chan receive' goroutines.pb.gz",
			"coreexplain pprof --heap -o heap.pb.gz core.1234 ./server",
			"go tool pprof -top -sample_index=inuse_objects heap.pb.gz",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			f := new(pprofFlags)
			fs.StringVarP(&f.output, "output", "o", "", "write the profile to `FILE` (required), - for stdout")
			fs.BoolVar(&f.heap, "heap", false, "profile the live heap (inuse_space, inuse_objects) instead of the goroutines")
			fs.IntVar(&f.maxFrames, "max-frames", goruntime.MaxGoroutineFrames, "cut each goroutine's stack after `N` frames")
			f.core.add(fs)
			return f.run
		},
	})
}

func (f *pprofFlags) run(e *env, args []string) int {
	core, binary, err := coreArgs(args)
	if err != nil {
		return fail(e, err)
	}
	if f.maxFrames <= 0 {
		return fail(e, usageError{"--max-frames must be positive"})
	}
	out := f.output
	if err := checkOutput(e, out); err != nil {
		return fail(e, err)
	}
	p, err := f.core.open(e, core, binary)
	if err != nil {
		return fail(e, err)
	}
	defer p.Close()
	r, err := goruntime.Load(p)
	if err != nil {
		if errors.Is(err, goruntime.ErrNoRuntime) {
			return fail(e, fmt.Errorf("%s: %w: a pprof profile needs a Go process", core, err))
		}
		return fail(e, err)
	}
	var prof *profile.Profile
	what := "goroutine profile"
	if f.heap {
		what = "heap profile"
		prof, err = pprof.Heap(r)
	} else {
		prof, err = pprof.Goroutines(r, pprof.GoroutineOptions{MaxFrames: f.maxFrames})
	}
	if err != nil {
		return fail(e, fmt.Errorf("%s: %w", what, err))
	}
	if err := writeProfile(e, prof, out); err != nil {
		return fail(e, err)
	}
	if out == "-" {
		return exitOK
	}
	fmt.Fprintf(e.stdout, "wrote %s of %s to %s: %s\n", what, core, out, profileSummary(prof))
	fmt.Fprintf(e.stdout, "read it with: go tool pprof -top %s   (go tool pprof -comments %s: what it covers and what was unreadable)\n", out, out)
	return exitOK
}

// checkOutput refuses, before any analysis, an output the profile could
// not be written to.
func checkOutput(e *env, out string) error {
	switch out {
	case "":
		return usageError{"-o FILE is required (- writes the profile to stdout)"}
	case "-":
		if isTerminal(e.stdout) {
			return usageError{"-o -: stdout is a terminal; a profile is gzipped protobuf: redirect it or name a file"}
		}
		return nil
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return usageError{fmt.Sprintf("-o %s is a directory", out)}
	}
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return usageError{fmt.Sprintf("-o %s: no directory %s", out, filepath.Dir(out))}
	}
	return nil
}

// writeProfile writes prof, gzipped, to out, - for stdout; a file is
// written next to its destination and renamed, so it is never partial.
func writeProfile(e *env, prof *profile.Profile, out string) error {
	if out == "-" {
		return prof.Write(e.stdout)
	}
	tmp, release, err := createBeside(out, true)
	if err != nil {
		return err
	}
	defer release()
	err = prof.Write(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return os.Rename(tmp.Name(), out)
}

// profileSummary totals the samples of prof: goroutines, or live objects
// and bytes.
func profileSummary(prof *profile.Profile) string {
	var totals [2]int64
	for _, s := range prof.Sample {
		for i := 0; i < len(s.Value) && i < len(totals); i++ {
			totals[i] += s.Value[i]
		}
	}
	if len(prof.SampleType) == 2 {
		return fmt.Sprintf("%d live objects, %.1f MiB", totals[0], float64(totals[1])/(1<<20))
	}
	return fmt.Sprintf("%d goroutines", totals[0])
}
