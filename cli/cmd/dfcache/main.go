// Command dfcache: see package github.com/dragonfly-p2p/df/cli/dfcache.
package main

import (
	"os"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/cli/dfcache"
)

func main() { os.Exit(clikit.Main(dfcache.NewCommand())) }
