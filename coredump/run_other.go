//go:build !linux

package coredump

import "errors"

// Run needs ptrace(2) as Linux has it: it stops the dying program at its
// fatal signal and reads its threads and memory.
func Run(prog string, args []string, opts RunOptions) (*RunResult, error) {
	return nil, errors.New("run needs Linux (ptrace)")
}
