// Command dftestnet: see package github.com/dragonfly-p2p/df/cli/dftestnet.
package main

import (
	"os"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/cli/dftestnet"
)

func main() { os.Exit(clikit.Main(dftestnet.NewCommand())) }
