package coredump_test

import (
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
)

func init() {
	coredump.FixtureCore = func(tb testing.TB, name string) string {
		return fixtures.MustCrash(tb, name, fixtures.Default).Core
	}
}
