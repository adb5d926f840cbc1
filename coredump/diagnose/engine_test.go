package diagnose_test

import (
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump/diagnose"
	"github.com/coreexplain/coreexplain/fixtures"
)

// TestOneCausePerCrash runs every rule on every crash fixture: the finding
// the fixture expects comes first (a leak fixture shows a leak but dies of
// something else) and is the only cause of death; each
// other finding is a related one. A fixture dumped on request may add one
// cause of the hang.
func TestOneCausePerCrash(t *testing.T) {
	names, err := fixtures.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		fx, err := fixtures.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		class, _ := fx.Spec.Expect["class"].(string)
		if fx.Spec.Live || class == "" || name == "go-many-goroutines" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			fds, _ := findings(t, crashOf(t, name, fixtures.Default))
			// A leak is what a fixture shows, not what killed it.
			if len(fds) == 0 || (string(fds[0].Class) != class && !diagnose.Class(class).Hang()) || !fds[0].Cause || findingOf(fds, class) == nil {
				for _, fd := range fds {
					t.Logf("%s (cause %v): %s", fd.Class, fd.Cause, fd.Summary)
				}
				t.Fatalf("want %s, the cause first", class)
			}
			death, hang := 0, 0
			for _, fd := range fds {
				switch {
				case !fd.Cause:
				case fd.Class.Hang():
					hang++
				default:
					death++
				}
			}
			if death != 1 || hang > 1 {
				for _, fd := range fds {
					t.Logf("%s (cause %v): %s", fd.Class, fd.Cause, fd.Summary)
				}
				t.Errorf("%d causes of death and %d of a hang", death, hang)
			}
		})
	}
}

// TestNoContentionWhileWorking: go-concurrent-map's main goroutine waits on
// a WaitGroup for the writers, which were running when one of them threw.
// That wait is work in progress, not contention; a note says why it is
// left out.
func TestNoContentionWhileWorking(t *testing.T) {
	fds, facts := findings(t, crashOf(t, "go-concurrent-map", fixtures.Default))
	if fd := findingOf(fds, "lock-contention"); fd != nil {
		t.Errorf("lock-contention on a crash whose lock holders were running: %s", fd.Summary)
	}
	noted := false
	for _, n := range facts.Notes() {
		noted = noted || strings.Contains(n, "1 object with waiters not reported: a goroutine holding or referring to each was running")
	}
	if !noted {
		t.Errorf("no note on the WaitGroup left out: %q", facts.Notes())
	}
}
