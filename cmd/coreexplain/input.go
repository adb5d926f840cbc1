package main

import (
	"errors"
	"fmt"
	"os"

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

// open opens the core and its binary as the flags say.
func (c *coreFlags) open(e *env, core, binary string) (*coredump.Process, error) {
	if err := c.progress.check(); err != nil {
		return nil, err
	}
	if err := checkSysroot(c.sysroot); err != nil {
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

// checkSysroot refuses a --sysroot that is not a directory: every library
// would then be "missing", and the report would blame the core.
func checkSysroot(dir string) error {
	if dir == "" {
		return nil
	}
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		return usageError{fmt.Sprintf("--sysroot %s: %v", dir, errors.Unwrap(err))}
	case !st.IsDir():
		return usageError{fmt.Sprintf("--sysroot %s: not a directory", dir)}
	}
	return nil
}

// coreArgs splits positional arguments into CORE and the optional BINARY.
func coreArgs(args []string) (core, binary string, err error) {
	switch len(args) {
	case 1:
		return args[0], "", nil
	case 2:
		core, binary = orderCoreBinary(args[0], args[1])
		return core, binary, nil
	case 0:
		return "", "", usageError{"missing CORE"}
	}
	return "", "", usageError{fmt.Sprintf("too many arguments: %q", args[2:])}
}

// orderCoreBinary takes the two files in either order: dlv, gdb and
// coredumpctl put the executable first. They are swapped only when the
// first is an ELF file that is not a core and the second is a core
// (plain or compressed); anything else stays as given, for Open to name
// what is wrong with it.
func orderCoreBinary(a, b string) (core, binary string) {
	ka, errA := coredump.KindOf(a)
	kb, errB := coredump.KindOf(b)
	if errA == nil && errB == nil && ka == coredump.KindELF && (kb == coredump.KindCore || kb == coredump.KindCompressed) {
		return b, a
	}
	return a, b
}

// splitCoreArgs separates CORE [BINARY] from the trailing operands: the
// second argument is the binary when it names an existing file and not an
// operand.
func splitCoreArgs(args []string, isOperand func(string) bool) (core, binary string, rest []string, err error) {
	if len(args) == 0 {
		return "", "", nil, usageError{"missing CORE"}
	}
	core, rest = args[0], args[1:]
	if len(rest) > 0 && !isOperand(rest[0]) {
		if _, err := os.Stat(rest[0]); err == nil {
			binary, rest = rest[0], rest[1:]
			core, binary = orderCoreBinary(core, binary)
		}
	}
	return core, binary, rest, nil
}
