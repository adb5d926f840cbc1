// Package pprof exports the Go runtime's view of a process as pprof
// profiles (github.com/google/pprof/profile): a goroutine profile with one
// sample per goroutine, and a profile of the live heap from a scan of the
// heap's spans. `go tool pprof` reads both.
//
// The profiles describe one moment (the dump), not a period: values are
// counts of what was there, never sampled.
package pprof

import (
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/google/pprof/profile"
)

// builder interns the functions, locations and mappings of a profile.
type builder struct {
	p     *profile.Profile
	funcs map[funcKey]*profile.Function
	locs  map[locKey]*profile.Location
	maps  []*profile.Mapping // sorted by Start
}

type funcKey struct{ name, file string }

type locKey struct {
	pc   uint64
	kind goruntime.FrameKind
	trap bool
	// name tells apart pseudo-locations (address 0) and frames of one pc
	// named differently (a tail call and its target).
	name string
}

func newBuilder(p *profile.Profile) *builder {
	return &builder{p: p, funcs: map[funcKey]*profile.Function{}, locs: map[locKey]*profile.Location{}}
}

// function interns a function.
func (b *builder) function(name, file string) *profile.Function {
	k := funcKey{name, file}
	if f, ok := b.funcs[k]; ok {
		return f
	}
	f := &profile.Function{ID: uint64(len(b.p.Function) + 1), Name: name, SystemName: name, Filename: file}
	b.p.Function = append(b.p.Function, f)
	b.funcs[k] = f
	return f
}

// pseudo interns a location of one line naming what is not code: a heap
// object's type or size class, an unreadable stack.
func (b *builder) pseudo(name string) *profile.Location {
	k := locKey{name: name}
	if l, ok := b.locs[k]; ok {
		return l
	}
	l := &profile.Location{ID: uint64(len(b.p.Location) + 1), Line: []profile.Line{{Function: b.function(name, "")}}}
	b.p.Location = append(b.p.Location, l)
	b.locs[k] = l
	return l
}

// addMappings adds a mapping for every executable mapping of the process's
// images, with the image's build ID, the way the runtime's own profiles
// list /proc/self/maps.
func (b *builder) addMappings(p *coredump.Process) {
	for _, im := range p.Images {
		id := im.ID()
		buildID := id.GNU
		if buildID == "" {
			buildID = id.Go
		}
		for _, m := range im.Mappings {
			if m.Perm&coredump.PermExec == 0 {
				continue
			}
			pm := &profile.Mapping{Start: m.Start, Limit: m.End, Offset: m.Offset, File: im.Path, BuildID: buildID}
			if im.IsExe {
				// Go frames come from the pclntab with files, lines and
				// inlined calls.
				pm.HasFilenames, pm.HasLineNumbers, pm.HasInlineFrames = true, true, true
			}
			b.maps = append(b.maps, pm)
		}
	}
	sort.Slice(b.maps, func(i, j int) bool { return b.maps[i].Start < b.maps[j].Start })
	// pprof takes the first mapping for the main binary: the executable's
	// come first, the way the runtime's own profiles list them.
	b.p.Mapping = nil
	for _, exe := range []bool{true, false} {
		for _, m := range b.maps {
			if (m.File == exePath(p)) == exe {
				m.ID = uint64(len(b.p.Mapping) + 1)
				b.p.Mapping = append(b.p.Mapping, m)
			}
		}
	}
}

func exePath(p *coredump.Process) string {
	if p.Exe == nil {
		return ""
	}
	return p.Exe.Path
}

// mappingOf returns the mapping holding pc, nil when none does.
func (b *builder) mappingOf(pc uint64) *profile.Mapping {
	i := sort.Search(len(b.maps), func(i int) bool { return b.maps[i].Limit > pc })
	if i < len(b.maps) && b.maps[i].Start <= pc {
		return b.maps[i]
	}
	return nil
}

// finishMappings marks the mappings whose every location is named, so
// that pprof does not symbolize them again.
func (b *builder) finishMappings() {
	named := map[*profile.Mapping]bool{}
	for _, m := range b.maps {
		named[m] = true
	}
	for _, l := range b.p.Location {
		if l.Mapping != nil && len(l.Line) == 0 {
			named[l.Mapping] = false
		}
	}
	for _, m := range b.maps {
		m.HasFunctions = named[m]
	}
}

// header is the opening comment lines of a profile of process p.
func header(what string, r *goruntime.Runtime) []string {
	p := r.Proc
	src := "a live process"
	if p.Core != "" {
		src = filepath.Base(p.Core)
	}
	exe := exePath(p)
	if exe == "" {
		exe = "executable unknown"
	}
	out := []string{fmt.Sprintf("coreexplain %s of %s (pid %d, %s, %s)", what, src, p.PID, exe, r.Version)}
	if p.Truncation != nil {
		out = append(out, p.Truncation.String()+": memory in the missing bytes reads as unavailable")
	}
	for _, n := range r.Notes {
		out = append(out, "note: "+n)
	}
	return out
}

// timestamp is when the process was dumped, when that is known.
func timestamp(p *coredump.Process) int64 {
	if p.Live() {
		return time.Now().UnixNano()
	}
	if p.Coredump != nil && !p.Coredump.Timestamp.IsZero() {
		return p.Coredump.Timestamp.UnixNano()
	}
	return 0
}
