package main

import (
	"errors"
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/spf13/pflag"
)

// coreFlags are the flags of every command that reads a core.
type coreFlags struct {
	sysroot  string
	force    bool
	progress progressFlag
}

func (c *coreFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&c.sysroot, "sysroot", "", "look up the core's libraries under `DIR` (a container's root filesystem)")
	fs.BoolVar(&c.force, "force", false, "analyse even when BINARY's build ID does not match the core")
	c.progress.add(fs)
}

// open opens CORE [BINARY] from the positional arguments, which must number
// between 1 and 1+extra... callers pass exactly the core and the optional
// binary.
func (c *coreFlags) open(e *env, core, binary string) (*coredump.Process, error) {
	if err := c.progress.check(); err != nil {
		return nil, err
	}
	p, err := coredump.Open(core, binary, coredump.Options{Sysroot: c.sysroot, Force: c.force})
	var mis *coredump.BuildIDMismatchError
	if errors.As(err, &mis) {
		return nil, fmt.Errorf("%w\n  pass --force to analyse it anyway (answers about the executable may then be wrong)", err)
	}
	if err != nil {
		return nil, err
	}
	c.progress.install(e, p)
	return p, nil
}

// coreArgs splits positional arguments into CORE and the optional BINARY.
func coreArgs(args []string) (core, binary string, err error) {
	switch len(args) {
	case 1:
		return args[0], "", nil
	case 2:
		return args[0], args[1], nil
	case 0:
		return "", "", usageError{"missing CORE"}
	}
	return "", "", usageError{fmt.Sprintf("too many arguments: %q", args[2:])}
}
