package report

import (
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/diagnose"
)

// Options control what a report includes.
type Options struct {
	// All keeps every goroutine's full stack and the runtime's
	// crash-handling frames.
	All bool
}

// Build gathers the facts about p, runs the rules and returns the report.
func Build(p *coredump.Process, opts Options) *Report {
	facts := diagnose.NewFacts(p)
	r := &Report{Schema: Schema, Findings: []diagnose.Finding{}, Threads: []Thread{}}
	r.Input = buildInput(p)
	r.Process = buildProcess(p)
	r.Process.Mappings = buildMappings(p)
	r.Threads = buildThreads(p)
	buildGo(p, r, opts, facts)
	buildLibc(p, r)
	// A process without findings (a live one that runs fine) has an empty
	// list, never null: the schema says findings is an array.
	r.Findings = append(r.Findings, diagnose.Run(facts)...)
	if p.Live() {
		liveSnapshot(r)
	}
	r.Signature = Signature(r)
	r.Notes = append(append([]string(nil), p.Warnings...), facts.Notes()...)
	if t := r.Input.Truncated; t != nil {
		r.Notes = append([]string{fmt.Sprintf("core truncated: %d of %d bytes missing; %d mappings lost their bytes",
			t.MissingBytes, t.ExpectedBytes, len(t.Mappings))}, r.Notes...)
	}
	addTruncationEffects(p, r)
	addDebugInfoNotes(p, r)
	return r
}

func buildInput(p *coredump.Process) Input {
	in := Input{Core: p.Core, CoreBytes: p.CoreSize}
	if p.Exe != nil {
		in.Binary = p.Exe.HostPath
	}
	if p.Live() {
		in.LivePID = p.PID
	}
	buildCoredump(p, &in)
	if t := p.Truncation; t != nil {
		tr := &Truncation{FileBytes: t.FileSize, ExpectedBytes: t.ExpectedSize, MissingBytes: t.MissingBytes(),
			NotesMissing: t.NotesMissing, Mappings: []string{}}
		for _, m := range t.Segments {
			tr.Mappings = append(tr.Mappings, m.String())
		}
		in.Truncated = tr
	}
	return in
}

func buildProcess(p *coredump.Process) Process {
	out := Process{PID: p.PID, Args: p.Args, Arch: p.Arch.String()}
	if out.Args == nil {
		out.Args = []string{}
	}
	if p.Exe != nil {
		out.Exe = p.Exe.Path
		if id := p.Exe.ID(); !id.Empty() {
			out.BuildID = id.String()
		}
	}
	for _, im := range p.Images {
		img := Image{Path: im.Path, Base: Addr(im.Base), Status: im.Status.String(), Note: im.Note, DebugFile: im.DebugFile()}
		if id := im.ID(); !id.Empty() {
			img.BuildID = id.String()
		}
		out.Images = append(out.Images, img)
	}
	return out
}

func buildThreads(p *coredump.Process) []Thread {
	out := make([]Thread, 0, len(p.Threads))
	for i, t := range p.Threads {
		th := Thread{TID: t.TID, TP: Addr(t.TP()), PC: Addr(t.Regs.PC()), State: "unknown"}
		th.Function = symbolName(p, t.Regs.PC())
		th.Crashing = i == 0 && !p.Live()
		out = append(out, th)
	}
	return out
}

// symbolName names the code at pc from the ELF symbols ("" when unknown).
func symbolName(p *coredump.Process, pc uint64) string {
	im, sym, ok := p.Symbolize(pc)
	if !ok {
		return ""
	}
	if im.IsExe {
		return sym.Name
	}
	return im.Name() + "`" + sym.Name
}

// liveSnapshot turns the crash view of a live process into what it is: no
// signal ended it (its threads' registers come with signal 0), and the
// thread the crash view picks is only the one stopped first: the first
// thread listed, the thread group leader, which the stopper seizes and
// interrupts before the others (unless a thread was already dying or had a
// fault pending, which the crash view picks instead).
func liveSnapshot(r *Report) {
	r.Signal = nil
	r.Stopped, r.Crash = r.Crash, nil
	for i := range r.Threads {
		th := &r.Threads[i]
		th.Crashing = false
		th.StoppedFirst = r.Stopped != nil && th.TID == r.Stopped.TID
	}
	if g := r.Goroutines; g != nil {
		for i := range g.Buckets {
			b := &g.Buckets[i]
			b.StoppedFirst, b.Crashing = b.Crashing, false
		}
	}
}
