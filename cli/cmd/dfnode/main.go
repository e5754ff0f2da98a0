// Command dfnode: see package github.com/dragonfly-p2p/df/cli/dfnode.
package main

import (
	"os"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/cli/dfnode"
)

func main() { os.Exit(clikit.Main(dfnode.NewCommand())) }
