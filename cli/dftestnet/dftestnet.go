// Package dftestnet is the dftestnet command tree: simulated networks for
// demos, tests and benchmarks.
package dftestnet

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/protocol/units"
	"github.com/dragonfly-p2p/df/testnet"
)

// NewCommand returns the dftestnet command.
func NewCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "dftestnet",
		Short: "Run simulated dragonfly networks: demos, scenarios, benchmarks",
	}
	root.AddCommand(newDemoCommand(), newRunCommand(), newSimCommand(), newFaultsCommand())
	return root
}

func newDemoCommand() *cobra.Command {
	var (
		binDir, dir string
		nodes       int
		size        = 64 * units.MiB
		keep        bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a local cluster of real dfnode processes and show it working",
		Long: `demo starts a manager, a scheduler and a cluster of dfnode processes on
127.0.0.1 (node0 is a seed peer; nodes alternate between two IDCs) and prints
the manager's console URL and root password. It imports a generated file on
one node with dfcache and exports it on another, has every node download the
same URL from a local origin at once with dfget, pulls an image through every
node's registry mirror, has the manager preheat a URL and an image on the
seed peer, and shows what came from peers and what from the origin, and the
scheduler's decisions: which parents each node was given, in which IDC.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if binDir == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				binDir = filepath.Dir(exe)
			}
			if nodes < 2 {
				return clikit.UsageError(fmt.Errorf("--nodes %d: need at least 2", nodes))
			}
			temporary := dir == "" && !keep
			if dir == "" {
				d, err := os.MkdirTemp("", "dragonfly-demo-")
				if err != nil {
					return err
				}
				dir = d
				if !keep {
					defer os.RemoveAll(d)
				}
			}
			ctx, stop := clikit.SignalContext(cmd.Context())
			defer stop()
			return testnet.Demo(ctx, testnet.DemoOptions{BinDir: binDir, Dir: dir, Nodes: nodes, Size: int64(size), Out: cmd.OutOrStdout(), Temporary: temporary})
		},
	}
	f := cmd.Flags()
	f.StringVar(&binDir, "bin-dir", "", "directory holding dfnode, dfget, dfcache, scheduler and manager (default: next to dftestnet)")
	f.StringVar(&dir, "dir", "", "working directory (default: a temporary one, removed afterwards)")
	f.IntVar(&nodes, "nodes", 3, "number of dfnode processes")
	f.Var(&size, "size", "size of the file downloaded with dfget")
	f.BoolVar(&keep, "keep", false, "keep the temporary directory (logs, data)")
	return cmd
}
