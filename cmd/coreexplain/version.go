package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// version overrides the module version, for builds that set it with
// -ldflags "-X main.version=v1.2.3".
var version string

func init() {
	register(&command{
		name:    "version",
		short:   "print the version",
		usage:   "version",
		summary: "Print coreexplain's version: the module version, the VCS revision it was built from, and the Go toolchain.",
		examples: []string{
			"coreexplain version",
			"coreexplain --version",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			return func(e *env, args []string) int {
				if len(args) > 0 {
					return fail(e, usageError{"version takes no arguments"})
				}
				fmt.Fprintln(e.stdout, versionLine())
				return exitOK
			}
		},
	})
}

// versionLine is what version and --version print, from the build
// information the go command records in the binary (runtime/debug):
//
//	coreexplain v0.1.0 (rev 4b241df0c1a2, 2026-12-03T18:20:00Z) go1.26.8 linux/amd64
//
// go run and go test do not stamp the revision; a build from a modified
// tree says so.
func versionLine() string {
	v, rev, when, modified := "(devel)", "", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		v = version
	}
	line := "coreexplain " + v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		line += " (rev " + rev
		if modified {
			line += ", modified"
		}
		if when != "" {
			line += ", " + when
		}
		line += ")"
	}
	return fmt.Sprintf("%s %s %s/%s", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
