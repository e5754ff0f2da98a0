// Command scheduler: see package github.com/dragonfly-p2p/df/cli/scheduler.
package main

import (
	"os"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/cli/scheduler"
)

func main() { os.Exit(clikit.Main(scheduler.NewCommand())) }
