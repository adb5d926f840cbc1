//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/report"
)

// crashWords are what a report on a process that did not crash must not
// say: it was stopped, not signalled, and no thread crashed.
var crashWords = regexp.MustCompile(`(?i)crash|signal 0|SI_USER|NT_PRSTATUS`)

// TestAttachSnapshotWords: a live snapshot of live-cgo-workers (three C
// threads and two goroutine-locked threads blocked in C, the main
// goroutine asleep) says which thread was stopped first (the thread group
// leader, tid = pid) and the states of the threads it saw, in the text,
// the Markdown and the JSON; no rendering says crash or shows a signal.
func TestAttachSnapshotWords(t *testing.T) {
	s := startService(t, "live-cgo-workers")
	pid := s.PID()
	code, out, stderr := runCLI("attach", "--json", fmt.Sprint(pid))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"signal", "crash"} {
		if _, ok := raw[k]; ok {
			t.Errorf("live snapshot JSON has %q: %s", k, raw[k])
		}
	}
	if crashWords.MatchString(out) {
		t.Errorf("live snapshot JSON says %q", crashWords.FindString(out))
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Input.LivePID != pid || r.Stopped == nil || r.Stopped.TID != pid || len(r.Stopped.Frames) == 0 {
		t.Fatalf("input %+v, stopped %+v: want the leader %d stopped first, with its stack", r.Input, r.Stopped, pid)
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	states := map[string]int{}
	first := 0
	for _, th := range r.Threads {
		states[th.State]++
		if th.StoppedFirst {
			first++
			if th.TID != pid {
				t.Errorf("thread %d marked stopped first, want %d", th.TID, pid)
			}
		}
	}
	if len(r.Threads) != len(tasks) || first != 1 {
		t.Errorf("%d threads (%d in /proc), %d stopped first", len(r.Threads), len(tasks), first)
	}
	if states["non-go"] != 3 || states["in-cgo"] != 2 {
		t.Errorf("thread states %v: want the 3 C threads non-go and the 2 locked threads in-cgo", states)
	}
	seen := r.ThreadStates()
	if !strings.Contains(seen, "3 non-go") || !strings.Contains(seen, "2 in-cgo") {
		t.Errorf("ThreadStates() = %q", seen)
	}
	for _, b := range r.Goroutines.Buckets {
		if b.Crashing {
			t.Errorf("bucket %+v crashing in a live snapshot", b.IDs)
		}
	}

	code, text, stderr := runCLI("attach", "--color=never", fmt.Sprint(pid))
	if code != exitOK {
		t.Fatalf("text: exit %d: %s", code, stderr)
	}
	want := fmt.Sprintf("stopped thread %d first, M0; %d threads seen: %s\n", pid, len(tasks), seen)
	if !strings.Contains(text, want) || !strings.Contains(text, fmt.Sprintf("\nstack of thread %d (stopped first)\n", pid)) {
		t.Errorf("text does not say %q and name the stack:\n%s", want, text)
	}
	if crashWords.MatchString(text) {
		t.Errorf("text says %q:\n%s", crashWords.FindString(text), text)
	}
	code, md, stderr := runCLI("attach", "--markdown", fmt.Sprint(pid))
	if code != exitOK {
		t.Fatalf("markdown: exit %d: %s", code, stderr)
	}
	want = fmt.Sprintf("**Stopped first:** thread %d, M0; %d threads seen: %s\n", pid, len(tasks), seen)
	if !strings.Contains(md, want) || !strings.Contains(md, fmt.Sprintf("### Stack of the thread stopped first (thread %d)", pid)) {
		t.Errorf("markdown does not say %q and name the stack:\n%s", want, md)
	}
	if crashWords.MatchString(md) {
		t.Errorf("markdown says %q:\n%s", crashWords.FindString(md), md)
	}
}
