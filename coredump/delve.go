package coredump

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/go-delve/delve/pkg/proc"
	delvecore "github.com/go-delve/delve/pkg/proc/core"
)

// delveState holds Delve's view of a core, opened once on first use.
type delveState struct {
	once   sync.Once
	target *proc.Target
	err    error
}

var errDelveLive = errors.New("Delve's view is available for core files only")

// Delve returns Delve's target for the core, opened on the same core and
// executable, for DWARF-level work: types, variables, expression
// evaluation. Trust its memory only for bytes stored in the core or
// belonging to the executable: for shared-library ranges it returns the
// executable's bytes, with no error (Delve v1.27.2 pkg/proc/core/
// linux_core.go, buildMemory, maps every NT_FILE range onto the
// executable).
func (p *Process) Delve() (*proc.Target, error) {
	if p.Live() {
		return nil, errDelveLive
	}
	st := p.Cached(delveKey{}, func() any { return &delveState{} }).(*delveState)
	st.once.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				st.err = fmt.Errorf("delve: internal error opening the core: %v", r)
			}
		}()
		if p.notesDamage != "" {
			st.err = fmt.Errorf("delve: not opened on a core whose notes are damaged (%s)", p.notesDamage)
			return
		}
		if p.Exe == nil || p.Exe.HostPath == "" {
			st.err = errors.New("delve: no executable")
			return
		}
		if !p.Exe.Status.Usable() {
			st.err = fmt.Errorf("delve: not opened with %s: %s", p.Exe.HostPath, p.Exe.statusText())
			return
		}
		grp, err := openCoreQuietly(p.coreFilePath(), p.Exe.HostPath)
		if err != nil {
			st.err = fmt.Errorf("delve: %w", err)
			return
		}
		st.target = grp.Selected
		p.OnClose(func() error { return grp.Detach(false) })
	})
	return st.target, st.err
}

type delveKey struct{}

var stderrMu sync.Mutex

// openCoreQuietly opens Delve's core target with os.Stderr pointed away:
// Delve prints "Warning: no debug info found" there for binaries without
// DWARF, which the report already says in its own words.
func openCoreQuietly(core, exe string) (*proc.TargetGroup, error) {
	stderrMu.Lock()
	defer stderrMu.Unlock()
	if null, err := os.Open(os.DevNull); err == nil {
		saved := os.Stderr
		os.Stderr = null
		defer func() {
			os.Stderr = saved
			null.Close()
		}()
	}
	return delvecore.OpenCore(core, exe, nil)
}
