package main

import (
	"fmt"
	"io"
	"time"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/spf13/pflag"
)

// progressFlag is the --progress flag of the commands that read a process.
type progressFlag struct{ mode string }

func (f *progressFlag) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.mode, "progress", "auto", "show progress of scans on stderr: auto (scans over 0.3 s, when stderr is a terminal), always (every scan) or never")
}

// check rejects a --progress value other than the three known ones; it
// runs before the process is opened, so a live target is never stopped for
// a typo.
func (f *progressFlag) check() error {
	switch f.mode {
	case "auto", "always", "never":
		return nil
	}
	return usageError{"--progress must be auto, always or never"}
}

// install shows p's progress on e's stderr when the flag asks for it.
func (f *progressFlag) install(e *env, p *coredump.Process) {
	if f.mode == "never" || (f.mode == "auto" && !isTerminal(e.stderr)) {
		return
	}
	l := &progressLine{w: e.stderr, now: time.Now, delay: progressDelay}
	if f.mode == "always" {
		l.delay = 0
	}
	p.SetProgress(l.update)
}

// progressLine shows a long walk on one terminal line, rewritten in place.
// It stays silent for walks that finish within delay (most of them) and
// redraws at most every progressRedraw, so it costs the walk
// nothing measurable; a finished walk erases its line.
type progressLine struct {
	w     io.Writer
	now   func() time.Time
	delay time.Duration
	task  string
	start time.Time // when task began
	drawn time.Time // last redraw; zero when nothing is on the line
}

const (
	progressDelay  = 300 * time.Millisecond
	progressRedraw = 100 * time.Millisecond
)

func (l *progressLine) update(task string, done, total int) {
	now := l.now()
	if task != l.task {
		l.erase()
		l.task, l.start = task, now
	}
	if total > 0 && done >= total {
		l.erase()
		l.task = ""
		return
	}
	if now.Sub(l.start) < l.delay || (!l.drawn.IsZero() && now.Sub(l.drawn) < progressRedraw) {
		return
	}
	if total > 0 {
		fmt.Fprintf(l.w, "\r\x1b[K%s: %d/%d (%d%%)", task, done, total, done*100/total)
	} else {
		fmt.Fprintf(l.w, "\r\x1b[K%s: %d", task, done)
	}
	l.drawn = now
}

// erase clears the line when something is drawn on it.
func (l *progressLine) erase() {
	if !l.drawn.IsZero() {
		fmt.Fprint(l.w, "\r\x1b[K")
		l.drawn = time.Time{}
	}
}
