// Command dfget: see package github.com/dragonfly-p2p/df/cli/dfget.
package main

import (
	"os"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/cli/dfget"
)

func main() { os.Exit(clikit.Main(dfget.NewCommand())) }
