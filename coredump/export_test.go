package coredump

import "testing"

// FixtureCore returns the core of a fixture crash. The internal tests need
// fixture cores but cannot import package fixtures, which imports this
// package; the external test package sets it (fixture_cores_test.go).
var FixtureCore func(tb testing.TB, name string) string

// ResidentBudget is residentBudget for the external tests.
const ResidentBudget = residentBudget

// SetMemoryLimit caps the memory a decompressed core may take ("" = what
// the system has) until the returned function restores the cap.
func SetMemoryLimit(limit string) (restore func()) {
	old := memoryLimit
	memoryLimit = limit
	return func() { memoryLimit = old }
}
