// Command manager: see package github.com/dragonfly-p2p/df/cli/manager.
package main

import (
	"os"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/cli/manager"
)

func main() { os.Exit(clikit.Main(manager.NewCommand())) }
