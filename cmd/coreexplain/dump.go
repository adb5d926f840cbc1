package main

import (
	"fmt"
	"os"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/spf13/pflag"
)

type dumpFlags struct {
	live   liveFlags
	output string
}

func init() {
	register(&command{
		name:  "dump",
		short: "write a core of a live process, like gcore",
		usage: "dump [flags] PID",
		summary: "Write a core file of a live process, like gcore, and let it run on. The core holds\n" +
			"every thread's registers and every readable mapping (code included), and reads in\n" +
			"coreexplain, dlv core and gdb.",
		examples: []string{
			"coreexplain dump 4242",
			"coreexplain dump -o /var/tmp/server.core $(pidof server)",
			"coreexplain /var/tmp/server.core",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			f := new(dumpFlags)
			fs.StringVarP(&f.output, "output", "o", "", "write the core to `FILE` (default core.PID)")
			f.live.add(fs)
			return f.run
		},
	})
}

func (f *dumpFlags) run(e *env, args []string) int {
	pid, err := pidArg(args)
	if err != nil {
		return fail(e, err)
	}
	out := f.output
	if out == "" {
		out = fmt.Sprintf("core.%d", pid)
	}
	p, err := f.live.open(e, pid)
	if err != nil {
		return fail(e, err)
	}
	defer p.Close()
	// Write next to the destination and rename, so FILE is never a
	// partial core.
	// A signal while the target is stopped is whileStopped's: it detaches
	// first, and the guard only removes the file.
	tmp, release, err := createBeside(out, false)
	if err != nil {
		return fail(e, err)
	}
	defer release()
	var st *coredump.CoreStats
	err = whileStopped(p, func() error {
		var err error
		st, err = p.WriteCore(tmp, coredump.CoreOptions{})
		return err
	})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return failLive(e, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fail(e, err)
	}
	fmt.Fprintf(e.stderr, "coreexplain: wrote %s: %d threads, %d mappings, %.1f MiB of memory", out, st.Threads, st.Mappings, float64(st.Memory)/(1<<20))
	if st.Unreadable > 0 {
		fmt.Fprintf(e.stderr, " (%d bytes unreadable, stored as zeros)", st.Unreadable)
	}
	fmt.Fprintf(e.stderr, "\ncoreexplain: PID %d was stopped for %.1f ms and is running again\n", pid, p.Frozen().Seconds()*1000)
	return exitOK
}
