// Package diagnose turns facts about a process into Findings: claims about
// why it died or hangs, each with the evidence that proves it.
//
// Rules live one class (or family) per file and register themselves with
// Register from an init function. A rule reads facts through *Facts, whose
// views of the process (the Go runtime, the C runtime, memory) are computed
// once on first use; it never parses ELF or reads raw notes itself.
package diagnose

import (
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
)

// Confidence says how sure a finding is.
type Confidence uint8

const (
	High Confidence = iota + 1
	Medium
	Low
)

var confidenceNames = [...]string{High: "high", Medium: "medium", Low: "low"}

func (c Confidence) String() string {
	if int(c) < len(confidenceNames) && confidenceNames[c] != "" {
		return confidenceNames[c]
	}
	return fmt.Sprintf("Confidence(%d)", uint8(c))
}

// MarshalText writes the confidence by name.
func (c Confidence) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a confidence name.
func (c *Confidence) UnmarshalText(b []byte) error {
	for i, n := range confidenceNames {
		if n != "" && n == string(b) {
			*c = Confidence(i)
			return nil
		}
	}
	return fmt.Errorf("unknown confidence %q", b)
}

// Evidence is one fact a finding rests on, with where it was read.
type Evidence struct {
	// What states the fact in words, e.g. "fault address 0x80 is field
	// Limits.MaxIdle of *main.Config".
	What string `json:"what"`
	// Addr is the target address the fact was read at or is about.
	Addr *coredump.Addr `json:"addr,omitempty"`
	// Value is the value read, as text.
	Value string `json:"value,omitempty"`
	// Source says where the fact came from: "NT_SIGINFO", "g.sigcode1 of
	// goroutine 1", "kernel sigframe on M0's signal stack", "glibc
	// __abort_msg", "DWARF of main.(*Server).maxIdle".
	Source string `json:"source,omitempty"`
}

// Location is where in the program a finding applies.
type Location struct {
	TID       int            `json:"tid,omitempty"`
	Goroutine int64          `json:"goroutine,omitempty"`
	Function  string         `json:"function,omitempty"`
	File      string         `json:"file,omitempty"`
	Line      int            `json:"line,omitempty"`
	PC        *coredump.Addr `json:"pc,omitempty"`
}

// Finding is a claim with proof.
type Finding struct {
	// Class is a stable machine name: "nil-deref", "go-panic",
	// "errno-slot-mismatch", ... (one of Classes()).
	Class Class `json:"class"`
	// Summary is one sentence a tired on-call engineer understands.
	Summary    string     `json:"summary"`
	Confidence Confidence `json:"confidence"`
	// Why explains a confidence below high.
	Why      string     `json:"confidence_why,omitempty"`
	Evidence []Evidence `json:"evidence"`
	Location *Location  `json:"location,omitempty"`
	// Key is a short, stable discriminator of the bug for crash
	// signatures: the abort message, the fatal error text, the panic
	// value's type. Never an address or a count.
	Key string `json:"key,omitempty"`
	// Cause marks the finding that explains the death (or the hang); the
	// others are related problems seen on the way.
	Cause bool `json:"cause,omitempty"`
	// Rank orders findings; lower is more important. Set by the rule
	// (0 = default importance).
	Rank int `json:"-"`
}

// Ev is a shorthand for evidence about an address.
func Ev(what string, addr uint64, source string) Evidence {
	a := coredump.Addr(addr)
	return Evidence{What: what, Addr: &a, Source: source}
}

// AddrPtr returns a pointer to a, for the optional address fields.
func AddrPtr(a uint64) *coredump.Addr {
	x := coredump.Addr(a)
	return &x
}
