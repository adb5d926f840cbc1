package coredump_test

import (
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
)

func init() {
	coredump.FixtureCore = func(tb testing.TB, name string) string {
		return fixturetest.MustCrash(tb, name, fixtures.Default).Core
	}
}
