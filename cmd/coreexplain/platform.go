package main

import "runtime"

// needsLinux are the subcommands that work on a live process, and the
// Linux interface each needs. Reading a core needs none: a Linux core is
// analysed on any system the binary builds for.
var needsLinux = map[string]string{
	"attach": "ptrace",
	"dump":   "ptrace",
	"run":    "ptrace",
	// demo crashes a fixture program under run's tracer.
	"demo": "ptrace",
}

// unsupported says why the subcommand name cannot run on goos, "" when it
// can.
func unsupported(goos, name string) string {
	if why, ok := needsLinux[name]; ok && goos != "linux" {
		return name + " needs Linux (" + why + ")"
	}
	return ""
}

// thisOS is the system coreexplain runs on; a variable so that a test can
// play another.
var thisOS = runtime.GOOS
