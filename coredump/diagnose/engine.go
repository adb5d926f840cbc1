package diagnose

import (
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"github.com/coreexplain/coreexplain/coredump"
)

// Rule is one diagnosis: it reads facts and returns findings (none when it
// does not apply).
type Rule struct {
	Name string
	Run  func(*Facts) []Finding
}

var (
	registryMu sync.Mutex
	registry   []Rule
)

// Register adds a rule; rule files call it from init.
func Register(r Rule) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry = append(registry, r)
}

// Facts is what rules read: the process and its views, each computed once
// on first use by the accessor methods in facts_*.go.
type Facts struct {
	Proc *coredump.Process
	// Notes collects what rules could not read or decide (a page not in the
	// core, a layout missing); the report shows them.
	mu    sync.Mutex
	notes []string
}

// NewFacts wraps a process for the rules.
func NewFacts(p *coredump.Process) *Facts { return &Facts{Proc: p} }

// Note records something a rule could not read or decide.
func (f *Facts) Note(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	for _, n := range f.notes {
		if n == msg {
			return
		}
	}
	f.notes = append(f.notes, msg)
}

// Notes returns what was noted so far.
func (f *Facts) Notes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.notes...)
}

// Run runs every registered rule and returns the findings, the cause of
// death first. A rule that panics does not stop the others: its failure
// becomes a note naming the rule.
func Run(f *Facts) []Finding {
	registryMu.Lock()
	rules := append([]Rule(nil), registry...)
	registryMu.Unlock()
	sort.Slice(rules, func(i, j int) bool { return rules[i].Name < rules[j].Name })
	var out []Finding
	for _, r := range rules {
		out = append(out, runRule(f, r)...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Cause != out[j].Cause {
			return out[i].Cause
		}
		if out[i].Rank != out[j].Rank {
			return out[i].Rank < out[j].Rank
		}
		return out[i].Confidence < out[j].Confidence
	})
	oneCause(out)
	return out
}

// oneCause leaves the cause mark on the first cause of death and the first
// cause of a hang only. Several rules see one event at their own level (a
// nil dereference the runtime turned into a panic, a dangling slice whose
// read faulted, a stack overflow the runtime reported as fatal): the most
// specific, ranked first, explains it; the others stay as related findings.
func oneCause(sorted []Finding) {
	death, hang := false, false
	for i := range sorted {
		fd := &sorted[i]
		if !fd.Cause {
			continue
		}
		seen := &death
		if fd.Class.Hang() {
			seen = &hang
		}
		if *seen {
			fd.Cause = false
		}
		*seen = true
	}
}

func runRule(f *Facts, r Rule) (found []Finding) {
	defer func() {
		if e := recover(); e != nil {
			stack := strings.SplitN(string(debug.Stack()), "\n", 12)
			f.Note("rule %s failed: %v (%s)", r.Name, e, strings.TrimSpace(stack[len(stack)-1]))
			found = nil
		}
	}()
	return r.Run(f)
}
