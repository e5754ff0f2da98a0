package clikit

import (
	"testing"

	"github.com/spf13/pflag"
	"go.uber.org/goleak"
)

// Every test must leave no goroutine behind: servers, signal watchers,
// runners and progress bars all stop when they say they do.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newFlagSet() *pflag.FlagSet {
	return pflag.NewFlagSet("test", pflag.ContinueOnError)
}
