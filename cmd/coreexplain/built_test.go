package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// built is the coreexplain binary, built once per test run for the tests
// that need a real process: timeouts, signals, live targets.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func builtCommand(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "coreexplain-bin-")
		if built.err != nil {
			return
		}
		os.Chmod(built.dir, 0o755) // TestAttachNotPermitted runs it as another user
		built.path = filepath.Join(built.dir, "coreexplain")
		if out, err := exec.Command("go", "build", "-o", built.path, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}
