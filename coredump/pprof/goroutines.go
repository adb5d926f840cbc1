package pprof

import (
	"fmt"
	"strings"

	"github.com/coreexplain/coreexplain/coredump/goruntime"
	"github.com/google/pprof/profile"
)

// Label keys of the goroutine profile. String labels: State is what the
// runtime prints in the goroutine header ("chan receive", "running",
// "syscall"); Status the scheduler status ("waiting", ...); WaitReason
// the reason of a waiting goroutine; Locked "true" for a goroutine locked
// to its thread; System "true" for the runtime's own goroutines; CreatedBy
// the function whose go statement created the goroutine; StackError why
// its stack is incomplete. Numeric labels: GoID the goroutine id; Wait how
// long it has been waiting (nanoseconds, when the runtime recorded when it
// blocked); Thread the tid of the thread running it.
const (
	LabelState      = "state"
	LabelStatus     = "status"
	LabelWaitReason = "wait_reason"
	LabelLocked     = "locked_to_thread"
	LabelSystem     = "system"
	LabelCreatedBy  = "created_by"
	LabelStackError = "stack_error"
	LabelGoID       = "goid"
	LabelWait       = "wait"
	LabelThread     = "thread"
)

// labelPrefix is put before a goroutine's own pprof label when its key is
// one of the tool's.
const labelPrefix = "label:"

// unreadableStack names the one location of a goroutine none of whose
// frames could be read.
const unreadableStack = "(stack unreadable)"

// GoroutineOptions tune the goroutine profile.
type GoroutineOptions struct {
	// MaxFrames bounds each stack's physical frames (0: the unwinder's
	// default, goruntime.MaxGoroutineFrames).
	MaxFrames int
}

// Goroutines builds the goroutine profile of r's process: one sample of
// value 1 per goroutine (the runtime's own included, labelled system),
// its stack unwound with the binary's pclntab, inlined calls as extra
// lines of one location, C frames named from their libraries' symbols.
// Goroutines are labelled with their state, wait reason and id (see the
// Label constants) and keep their own pprof labels (runtime/pprof.Do); a
// goroutine label whose key is one of the tool's gets the prefix
// "label:". What could not be read is said in the profile's comments.
func Goroutines(r *goruntime.Runtime, opts GoroutineOptions) (*profile.Profile, error) {
	p := &profile.Profile{
		SampleType:        []*profile.ValueType{{Type: "goroutine", Unit: "count"}},
		DefaultSampleType: "goroutine",
		PeriodType:        &profile.ValueType{Type: "goroutine", Unit: "count"},
		Period:            1,
		TimeNanos:         timestamp(r.Proc),
	}
	b := newBuilder(p)
	b.addMappings(r.Proc)
	buckets := r.Buckets(opts.MaxFrames)
	now := r.Clock()
	total := 0
	for _, bk := range buckets {
		total += len(bk.Goroutines)
	}
	// The samples, their values and goroutine ids are allocated at once,
	// and the unit of the wait label is shared: a profile of a million
	// goroutines is a million samples.
	p.Sample = make([]*profile.Sample, 0, total)
	samples := make([]profile.Sample, total)
	words := make([]int64, 2*total)
	waitUnit := map[string][]string{LabelWait: {"nanoseconds"}}
	var errs []string
	labelErrs := 0
	for _, bk := range buckets {
		locs := b.stack(bk.Frames)
		labels := map[string][]string{LabelState: {bk.State}, LabelStatus: {bk.Status}}
		if bk.WaitReason != "" {
			labels[LabelWaitReason] = []string{bk.WaitReason}
		}
		if bk.Locked {
			labels[LabelLocked] = []string{"true"}
		}
		if bk.System {
			labels[LabelSystem] = []string{"true"}
		}
		if bk.CreatedBy != nil && bk.CreatedBy.Func != "" {
			labels[LabelCreatedBy] = []string{bk.CreatedBy.Func}
		}
		if bk.Err != nil {
			labels[LabelStackError] = []string{bk.Err.Error()}
			errs = append(errs, fmt.Sprintf("goroutine %s: stack incomplete after %d frames: %v",
				idList(bk.IDs(), 10), len(bk.Frames), bk.Err))
		}
		for _, g := range bk.Goroutines {
			i := len(p.Sample)
			value, id := words[2*i:2*i+1:2*i+1], words[2*i+1:2*i+2:2*i+2]
			value[0], id[0] = 1, g.ID
			s := &samples[i]
			*s = profile.Sample{Location: locs, Value: value, Label: labels, NumLabel: map[string][]int64{LabelGoID: id}}
			if g.WaitSince != 0 && now > g.WaitSince {
				s.NumLabel[LabelWait] = []int64{now - g.WaitSince}
				s.NumUnit = waitUnit
			}
			if m := g.M(); m != nil && m.ProcID != 0 {
				s.NumLabel[LabelThread] = []int64{int64(m.ProcID)}
			}
			own, err := r.Labels(g)
			if err != nil {
				if labelErrs++; labelErrs <= 10 {
					errs = append(errs, err.Error())
				}
			}
			if len(own) > 0 {
				s.Label = withOwnLabels(labels, own)
			}
			p.Sample = append(p.Sample, s)
		}
	}
	b.finishMappings()
	p.Comments = header("goroutine profile", r)
	p.Comments = append(p.Comments, fmt.Sprintf("%d goroutines in %d groups of identical stacks and state (%d goroutine structs in allgs, dead ones included)",
		total, len(buckets), r.AllGLen))
	p.Comments = append(p.Comments, errs...)
	if labelErrs > 10 {
		p.Comments = append(p.Comments, fmt.Sprintf("pprof labels of %d more goroutines unreadable", labelErrs-10))
	}
	return p, nil
}

// withOwnLabels adds a goroutine's own pprof labels to the tool's.
func withOwnLabels(tool map[string][]string, own []goruntime.Label) map[string][]string {
	out := make(map[string][]string, len(tool)+len(own))
	for k, v := range tool {
		out[k] = v
	}
	for _, l := range own {
		k := l.Key
		if _, clash := tool[k]; clash || isToolLabel(k) {
			k = labelPrefix + k
		}
		out[k] = append(out[k], l.Value)
	}
	return out
}

func isToolLabel(k string) bool {
	switch k {
	case LabelState, LabelStatus, LabelWaitReason, LabelLocked, LabelSystem, LabelCreatedBy, LabelStackError,
		LabelGoID, LabelWait, LabelThread:
		return true
	}
	return strings.HasPrefix(k, labelPrefix)
}

// stack turns frames (innermost first) into locations: one per physical
// frame, its inlined calls as the location's first lines, the way the
// runtime's own profiles record them.
func (b *builder) stack(frames []goruntime.Frame) []*profile.Location {
	if len(frames) == 0 {
		return []*profile.Location{b.pseudo(unreadableStack)}
	}
	var out []*profile.Location
	for i := 0; i < len(frames); {
		j := i
		for j+1 < len(frames) && frames[j].Inlined && frames[j+1].PC == frames[i].PC && frames[j+1].Kind == frames[i].Kind {
			j++
		}
		out = append(out, b.location(frames[i:j+1]))
		i = j + 1
	}
	return out
}

// location interns the location of one physical frame: group holds its
// inlined calls, innermost first, and the function they were inlined in.
func (b *builder) location(group []goruntime.Frame) *profile.Location {
	f := group[len(group)-1]
	k := locKey{pc: f.PC, kind: f.Kind, trap: f.Trap, name: group[0].Func}
	if l, ok := b.locs[k]; ok {
		return l
	}
	l := &profile.Location{ID: uint64(len(b.p.Location) + 1), Address: f.PC, Mapping: b.mappingOf(f.PC)}
	for _, fr := range group {
		if fr.Func == "" {
			continue // pprof symbolizes the address from the mapping
		}
		l.Line = append(l.Line, profile.Line{Function: b.function(fr.Func, fr.File), Line: int64(fr.Line)})
	}
	b.p.Location = append(b.p.Location, l)
	b.locs[k] = l
	return l
}

// idList lists goroutine ids, at most max of them.
func idList(ids []int64, max int) string {
	var s []string
	for i, id := range ids {
		if i == max {
			s = append(s, fmt.Sprintf("and %d more", len(ids)-max))
			break
		}
		s = append(s, fmt.Sprint(id))
	}
	return strings.Join(s, ", ")
}
