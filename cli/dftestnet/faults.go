package dftestnet

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/testnet"
)

func newFaultsCommand() *cobra.Command {
	var output, logLevel string
	cmd := &cobra.Command{
		Use:   "faults SCENARIO.yaml...",
		Short: "Run fault-matrix scenarios (kills, partitions, lying peers, full disks) and check them",
		Long: `faults runs each fault scenario (testnet/scenarios/faults/*.yaml) as an
in-process cluster with shaped links: every host downloads one file from a
shaped origin while the scenario's timeline strikes. Actions: kill,
kill-parent (the live host that uploaded the most), restart, slow, corrupt (a
lying peer), disk-full (a tmpfs of quota bytes; needs root), kill-owner (the
task's owner scheduler), schedulers-down, partition (hosts: [...]), heal and
manager-down (with manager: true the nodes take their scheduler ring from a
manager, which then stops).

Each run then asserts that every surviving host holds byte-identical content
(as delivered and as stored), that honest hosts served no piece that did not
match its verified digest, that a lying peer's pieces were rejected, that a
restarted host resumed from its stored pieces, that a host whose disk filled
failed with ENOSPC, and the origin ratio of expect:.

Exit status 1 when any scenario fails an assertion.`,
		Example: `  dftestnet faults testnet/scenarios/faults/*.yaml
  dftestnet faults testnet/scenarios/faults/lying-peer.yaml --output json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clikit.CheckFormat(output); err != nil {
				return err
			}
			log, err := clikit.NewLogger(os.Stderr, "text", logLevel)
			if err != nil {
				return clikit.UsageError(err)
			}
			var scs []testnet.FaultScenario
			for _, p := range args {
				sc, err := testnet.LoadFaultScenario(p)
				if err != nil {
					return clikit.UsageError(err)
				}
				scs = append(scs, sc)
			}
			ctx, stop := clikit.SignalContext(cmd.Context())
			defer stop()
			var results []testnet.FaultResult
			failed := 0
			for _, sc := range scs {
				fmt.Fprintf(cmd.ErrOrStderr(), "▶ %s: %s\n", sc.Name, sc.Description)
				dir, err := os.MkdirTemp("", "dftestnet-faults-")
				if err != nil {
					return err
				}
				res, err := testnet.RunFaultScenario(ctx, filepath.Join(dir, "run"), sc, log)
				os.RemoveAll(dir)
				if err != nil {
					res.Name = sc.Name
					res.Failures = append(res.Failures, "run: "+err.Error())
				}
				if len(res.Failures) > 0 {
					failed++
				}
				results = append(results, res)
			}
			if err := clikit.Print(cmd.OutOrStdout(), output, results, func(w io.Writer) error { return printFaults(w, results) }); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d fault scenarios failed", failed, len(results))
			}
			return nil
		},
	}
	clikit.AddOutputFlag(cmd.Flags(), &output)
	cmd.Flags().StringVar(&logLevel, "log-level", "error", "nodes' log level: debug, info, warn, error")
	return cmd
}

func printFaults(w io.Writer, results []testnet.FaultResult) error {
	fmt.Fprintf(w, "%-24s %-7s %9s %8s %8s %10s %9s  %s\n", "scenario", "result", "completed", "origin", "rejected", "unverified", "time", "notes")
	for _, r := range results {
		done, other := 0, ""
		for _, h := range r.Hosts {
			switch h.Status {
			case "completed":
				done++
			case "killed":
				other += fmt.Sprintf("host %d killed; ", h.Host)
			case "failed":
				other += fmt.Sprintf("host %d failed as expected (%s); ", h.Host, h.Error)
			}
			if h.KeptPieces > 0 {
				other += fmt.Sprintf("host %d resumed with %d pieces; ", h.Host, h.KeptPieces)
			}
		}
		status := "PASS"
		if len(r.Failures) > 0 {
			status = "FAIL"
		}
		fmt.Fprintf(w, "%-24s %-7s %5d/%-3d %7.2f× %8d %10d %9s  %s\n", r.Name, status, done, len(r.Hosts), r.OriginRatio, r.Rejected,
			r.UnverifiedServed, r.Elapsed.Round(100*time.Millisecond), other)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "    ✗ %s\n", f)
		}
	}
	return nil
}
