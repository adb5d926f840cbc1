// Package report is the coreexplain report: a plain data model (the JSON
// schema coreexplain/v1) built from a process and its findings, and the
// renderings of it as text and Markdown. The text is a rendering of the
// model, nothing more: whatever the text says, the JSON says too.
package report

import (
	"fmt"
	"sort"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/diagnose"
)

// Schema names the JSON format; it changes only with incompatible changes.
const Schema = "coreexplain/v1"

// Addr is a target address, marshalled as "0x...".
type Addr = coredump.Addr

// Report is everything coreexplain says about one process.
type Report struct {
	Schema  string  `json:"schema"`
	Input   Input   `json:"input"`
	Process Process `json:"process"`
	// Signal is the signal that really ended the process: the original
	// fault behind the Go runtime's re-raised SIGABRT when there is one.
	Signal *Signal `json:"signal,omitempty"`
	Crash  *Crash  `json:"crash,omitempty"`
	// Stopped replaces Signal and Crash for a live snapshot
	// (input.live_pid): nothing crashed, so it is the thread stopped
	// first and its stack, not a crash site.
	Stopped  *Crash             `json:"stopped,omitempty"`
	Findings []diagnose.Finding `json:"findings"`
	Threads  []Thread           `json:"threads"`
	// Goroutines is nil for a process without a Go runtime.
	Goroutines *Goroutines `json:"goroutines,omitempty"`
	// Signature groups cores of the same bug: class-prefixed, built from
	// normalised frames, free of addresses.
	Signature string `json:"signature"`
	// Notes are what could not be read or decided, and why (a truncated
	// core, a library that differs from the one mapped, ...).
	Notes []string `json:"notes,omitempty"`
}

// Input names what was analysed.
type Input struct {
	Core      string `json:"core,omitempty"`
	Binary    string `json:"binary,omitempty"`
	LivePID   int    `json:"live_pid,omitempty"`
	CoreBytes int64  `json:"core_bytes,omitempty"`
	// Truncated is set when the core file is shorter than its headers say.
	Truncated *Truncation `json:"truncated,omitempty"`
	// Compression is how the core file was compressed ("zstd", "lz4",
	// "xz", "gzip"), "" for a plain core.
	Compression string `json:"compression,omitempty"`
	// Coredump is what systemd-coredump recorded next to the core.
	Coredump *Coredump `json:"coredump,omitempty"`
	// FrozenMillis is how long a live process was stopped.
	FrozenMillis float64 `json:"frozen_ms,omitempty"`
}

// Truncation says how much of a truncated core is missing.
type Truncation struct {
	FileBytes     int64    `json:"file_bytes"`
	ExpectedBytes int64    `json:"expected_bytes"`
	MissingBytes  int64    `json:"missing_bytes"`
	Mappings      []string `json:"mappings"` // the mappings whose bytes are missing
	NotesMissing  bool     `json:"notes_missing,omitempty"`
	// Affected lists the answers the missing bytes take away (threads
	// whose stacks are lost, images whose data is lost, ...).
	Affected []string `json:"affected,omitempty"`
}

// Process describes the process as a whole.
type Process struct {
	PID       int      `json:"pid"`
	Exe       string   `json:"exe"`
	Args      []string `json:"args"`
	Arch      string   `json:"arch"`
	BuildID   string   `json:"build_id,omitempty"`
	GoVersion string   `json:"go_version,omitempty"`
	Libc      *Libc    `json:"libc,omitempty"`
	// Images are the ELF objects mapped, with whether the files read on
	// this machine match them.
	Images []Image `json:"images,omitempty"`
	// Mappings is the address space: what debuggers without a memory map
	// of a core (Delve) need to call an address unmapped.
	Mappings []Mapping `json:"mappings,omitempty"`
}

// Mapping is one range of the address space.
type Mapping struct {
	Start  Addr   `json:"start"`
	End    Addr   `json:"end"`
	Perm   string `json:"perm"` // "r-x", "---", ...
	File   string `json:"file,omitempty"`
	Offset Addr   `json:"offset,omitempty"`
	// Dumped is how many bytes from Start the core holds; file-backed
	// bytes it does not hold are read from the file on disk.
	Dumped uint64 `json:"dumped"`
	// Missing is how many of the dumped bytes a truncated core lost.
	Missing uint64 `json:"missing,omitempty"`
}

// Libc identifies the C runtime.
type Libc struct {
	Flavor  string `json:"flavor"`  // glibc, musl, none
	Linkage string `json:"linkage"` // dynamic, static
	Version string `json:"version,omitempty"`
	Loader  string `json:"loader,omitempty"` // PT_INTERP
}

// Image is one mapped ELF object.
type Image struct {
	Path    string `json:"path"`
	Base    Addr   `json:"base"`
	BuildID string `json:"build_id,omitempty"`
	Status  string `json:"status"` // verified, unverified, mismatch, missing, in-memory
	Note    string `json:"note,omitempty"`
	// DebugFile is the separate debug file whose symbols name the image's
	// functions (the image itself was stripped).
	DebugFile string `json:"debug_file,omitempty"`
}

// Signal is the signal that ended the process and where it came from.
type Signal struct {
	Name       string `json:"name"`
	Number     int    `json:"number"`
	Code       string `json:"code"` // SEGV_MAPERR, SI_TKILL, ...
	CodeNumber int32  `json:"code_number"`
	// Addr is si_addr for faults.
	Addr *Addr `json:"addr,omitempty"`
	// PC and Function are where the signal was raised.
	PC       *Addr  `json:"pc,omitempty"`
	Function string `json:"function,omitempty"`
	// SenderPID is the sender of a signal sent by a process.
	SenderPID int `json:"sender_pid,omitempty"`
	// Source says where the facts came from: "sigframe" (the kernel's
	// signal frame the runtime's handler received), "g.sig" (the fault
	// the runtime recorded in the goroutine), "NT_SIGINFO" (the core's
	// note, when no earlier fault was found), "NT_PRSTATUS".
	Source string `json:"source"`
	// Reraised is set when the core's NT_SIGINFO differs from this signal
	// because the Go runtime re-raised SIGABRT to dump core.
	Reraised *ReraisedSignal `json:"reraised,omitempty"`
}

// ReraisedSignal is the signal the core file records when the runtime
// re-raised.
type ReraisedSignal struct {
	Name string `json:"name"`
	Code string `json:"code"`
}

// Crash is the crash site.
type Crash struct {
	TID       int    `json:"tid"`
	M         *int64 `json:"m,omitempty"`
	Goroutine int64  `json:"goroutine,omitempty"`
	InCgo     bool   `json:"in_cgo"`
	// Frames from the fault outward through C and Go frames; the
	// runtime's crash-handling frames are left out unless --all.
	Frames []Frame `json:"frames"`
	// Registers at the fault, when known.
	Registers map[string]Addr `json:"registers,omitempty"`
}

// Frame is one stack frame.
type Frame struct {
	Function string `json:"function"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	PC       Addr   `json:"pc"`
	// Module is the image for frames outside the executable
	// ("libc.so.6"); Function is then "libc.so.6+0x891f5" when no symbol
	// names the code.
	Module string `json:"module,omitempty"`
	Kind   string `json:"kind,omitempty"` // go, c, signal
	// Inlined marks a frame inlined into the next one.
	Inlined bool `json:"inlined,omitempty"`
	// TailCall marks a C frame put back because its function tail-called
	// the next one (its own frame is gone from the stack).
	TailCall bool `json:"tail_call,omitempty"`
	// Plumbing marks the runtime's crash-handling frames (sigtramp,
	// sighandler, crash, raise, dieFromSignal, abort...).
	Plumbing bool `json:"plumbing,omitempty"`
}

// Thread is one OS thread.
type Thread struct {
	TID       int    `json:"tid"`
	M         *int64 `json:"m,omitempty"`
	Goroutine int64  `json:"goroutine,omitempty"`
	// State is what the thread was doing before the crash signal arrived:
	// running-go, in-cgo, in-syscall, idle, non-go, ...
	State    string `json:"state"`
	TP       Addr   `json:"tp"`
	PC       Addr   `json:"pc"`
	Function string `json:"function,omitempty"`
	Errno    *Errno `json:"errno,omitempty"`
	Crashing bool   `json:"crashing,omitempty"`
	// StoppedFirst marks, in a live snapshot, the thread stopped first
	// (Report.Stopped); no thread is crashing then.
	StoppedFirst bool     `json:"stopped_first,omitempty"`
	Notes        []string `json:"notes,omitempty"`
	// Frames is the thread's stack (--all, or for threads in C).
	Frames []Frame `json:"frames,omitempty"`
}

// Errno is a thread's errno slot.
type Errno struct {
	Value int    `json:"value"`
	Name  string `json:"name"`
	Addr  Addr   `json:"addr"`
	// Note explains a value not to be trusted (e.g. overwritten by the
	// runtime's crash path).
	Note string `json:"note,omitempty"`
}

// Goroutines summarises the goroutines.
type Goroutines struct {
	Total   int            `json:"total"`
	ByState map[string]int `json:"by_state"`
	Buckets []Bucket       `json:"buckets"`
}

// Bucket is a group of goroutines with identical stacks and state.
type Bucket struct {
	Count      int    `json:"count"`
	State      string `json:"state"`
	WaitReason string `json:"wait_reason,omitempty"`
	// WaitMinutes is the longest wait in the bucket, when recorded.
	WaitMinutes int  `json:"wait_minutes,omitempty"`
	Crashing    bool `json:"crashing,omitempty"`
	// StoppedFirst marks, in a live snapshot, the bucket of the goroutine
	// on the thread stopped first.
	StoppedFirst bool `json:"stopped_first,omitempty"`
	// Locked marks goroutines locked to their OS thread (LockOSThread).
	Locked    bool    `json:"locked,omitempty"`
	Frames    []Frame `json:"frames"`
	CreatedBy *Frame  `json:"created_by,omitempty"`
	IDs       []int64 `json:"ids"`
}

// Unexplained returns why r explains nothing, or "" when it explains
// something. A report with no signal, no thread, no crash frame and no
// finding has no story to tell: whatever the renderings printed would be headers around
// nothing. This is the one place that decision is made; the command exits
// 2 with the reason (after the JSON, which still carries the input, the
// process facts and the notes saying what was lost). Input that is
// unusable as a whole (not a core, headers cut, no NT_PRSTATUS note) never
// becomes a report: coredump.Open rejects it first.
func (r *Report) Unexplained() string {
	if r.Signal != nil || len(r.Threads) > 0 || len(r.Findings) > 0 || r.Crash != nil && len(r.Crash.Frames) > 0 ||
		r.Stopped != nil && len(r.Stopped.Frames) > 0 {
		return ""
	}
	why := "nothing could be explained: no signal, no thread and no finding could be read"
	if len(r.Notes) > 0 {
		why += " (" + r.Notes[0] + ")"
	}
	return why
}

// ThreadStates counts the threads by state, most common first ("1
// in-cgo, 5 idle" sorts as "5 idle, 1 in-cgo"): what a live snapshot saw.
func (r *Report) ThreadStates() string {
	n := map[string]int{}
	var order []string
	for _, th := range r.Threads {
		if n[th.State] == 0 {
			order = append(order, th.State)
		}
		n[th.State]++
	}
	sort.SliceStable(order, func(i, j int) bool {
		if n[order[i]] != n[order[j]] {
			return n[order[i]] > n[order[j]]
		}
		return order[i] < order[j]
	})
	parts := make([]string, len(order))
	for i, st := range order {
		parts[i] = fmt.Sprintf("%d %s", n[st], st)
	}
	return strings.Join(parts, ", ")
}
