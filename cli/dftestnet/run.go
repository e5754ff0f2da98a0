package dftestnet

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/testnet"
)

// runReport is `dftestnet run`'s JSON output.
type runReport struct {
	Scenario string               `json:"scenario"`
	P2P      testnet.SwarmResult  `json:"p2p"`
	Baseline *testnet.SwarmResult `json:"baseline,omitempty"`
	Speedup  float64              `json:"speedup_vs_baseline,omitempty"`
	// Torrent is the aria2 + opentracker swarm on the same rates;
	// TorrentRatio is its last host's time / P2P's (> 1: P2P is faster).
	Torrent        *testnet.SwarmResult `json:"bittorrent,omitempty"`
	TorrentRatio   float64              `json:"bittorrent_ratio,omitempty"`
	TorrentSkipped string               `json:"bittorrent_skipped,omitempty"`
	// Netns is the same scenario on the namespace back end (--backend
	// both); BackendRatio is its last host's time / the in-process one's.
	Netns        *testnet.SwarmResult `json:"netns,omitempty"`
	BackendRatio float64              `json:"backend_ratio,omitempty"`
	// Unconstrained is the same swarm without the inter-IDC limit
	// (compare-unconstrained); Slowdown is P2P's last time / its.
	Unconstrained *testnet.SwarmResult `json:"unconstrained,omitempty"`
	Slowdown      float64              `json:"constrained_slowdown,omitempty"`
	Passed        bool                 `json:"passed"`
	Failure       string               `json:"failure,omitempty"`
}

func newRunCommand() *cobra.Command {
	var output, pngPath, logLevel, backend, binDir string
	var keep bool
	cmd := &cobra.Command{
		Use:   "run SCENARIO.yaml",
		Short: "Run a swarm scenario in-process with shaped links and report it",
		Long: `run starts the scenario's hosts as in-process dfnode nodes (real libp2p on
127.0.0.1), shapes every host's link in userspace (bandwidth up and down,
latency, loss), starts the scheduler(s) and seed peer it names, has every host
download one file from a shaped origin, applies its timeline (kill, restart,
slow, corrupt) and reports completion p50/p99/last, efficiency against the
Kumar–Ross bound, origin bytes and CPU; with baseline: true, the same hosts
fetch straight from the origin too. Every surviving host's content is checked
byte for byte. Example scenarios: testnet/scenarios/.

Back ends (backend: in the scenario, or --backend): inprocess (the default,
above) or netns: every host, the origin and each scheduler in its own Linux
network namespace on bridges behind a router namespace, hosts as real dfnode
and scheduler processes from --bin-dir, bandwidth by tc tbf. netns needs root
and iproute2, cannot apply latency or loss (no netem on this kernel; noted in
the report) nor the corrupt action, and removes the namespaces of earlier
runs that were killed. --backend both runs the scenario on both and reports
the ratio.

With idcs: N the hosts are split into N data centres (each announces its
--idc to the scheduler) joined by a shared inter-idc link per direction;
the report splits host-to-host bytes into intra- and inter-IDC, and
compare-unconstrained: true also runs the swarm without the limit.

Exit status 1 when a host failed or an expectation (expect:) is not met.`,
		Example: `  dftestnet run testnet/scenarios/swarm-16.yaml --png swarm.png
  dftestnet run testnet/scenarios/ci-small.yaml --output json
  sudo bin/dftestnet run testnet/scenarios/ci-small.yaml --backend both
  dftestnet run testnet/scenarios/two-idc-16.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clikit.CheckFormat(output); err != nil {
				return err
			}
			sc, err := testnet.LoadScenario(args[0])
			if err != nil {
				return clikit.UsageError(err)
			}
			both := backend == "both"
			switch backend {
			case "":
			case "both":
				sc.Backend = testnet.BackendInProcess
			case testnet.BackendInProcess, testnet.BackendNetns:
				sc.Backend = backend
			default:
				return clikit.UsageError(fmt.Errorf("--backend %q: want inprocess, netns or both", backend))
			}
			if sc.Backend == testnet.BackendNetns || both {
				if err := testnet.NetnsAvailable(); err != nil {
					return err
				}
				if binDir == "" {
					exe, err := os.Executable()
					if err != nil {
						return err
					}
					binDir = filepath.Dir(exe)
				}
			}
			log, err := clikit.NewLogger(os.Stderr, "text", logLevel)
			if err != nil {
				return clikit.UsageError(err)
			}
			dir, err := os.MkdirTemp("", "dftestnet-run-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(dir)
			}
			ctx, stop := clikit.SignalContext(cmd.Context())
			defer stop()
			spec := sc.Spec()
			spec.Log, spec.BinDir = log, binDir
			fmt.Fprintf(cmd.ErrOrStderr(), "▶ %s: %d hosts, %v at %v up / %v down, origin %v up (bound %.1fs), %s\n",
				sc.Name, sc.Hosts, sc.Size, rate(sc.Up), rate(sc.Down), rate(sc.OriginUp), spec.Bound().Seconds(), backendName(sc.Backend))
			if sc.IDCs > 1 {
				fmt.Fprintf(cmd.ErrOrStderr(), "  %d IDCs, inter-IDC link %v per direction\n", sc.IDCs, rate(sc.InterIDC))
			}
			rep := runReport{Scenario: sc.Name}
			rep.P2P, err = testnet.RunSwarm(ctx, dir, spec)
			if err != nil {
				rep.Failure = err.Error()
			}
			if rep.Failure == "" && both {
				fmt.Fprintf(cmd.ErrOrStderr(), "▶ netns: the same scenario as dfnode processes in network namespaces\n")
				ns := spec
				ns.Backend = testnet.BackendNetns
				r, nerr := testnet.RunSwarm(ctx, dir+"-netns", ns)
				if !keep {
					defer os.RemoveAll(dir + "-netns")
				}
				if nerr != nil {
					rep.Failure = "netns: " + nerr.Error()
				} else {
					rep.Netns = &r
					rep.BackendRatio = r.Last.Seconds() / rep.P2P.Last.Seconds()
					if cerr := sc.Check(r); cerr != nil {
						rep.Failure = "netns: " + cerr.Error()
					}
				}
			}
			if rep.Failure == "" && sc.CompareUnconstrained {
				fmt.Fprintf(cmd.ErrOrStderr(), "▶ unconstrained: the same swarm without the inter-IDC limit\n")
				free := spec
				free.InterIDC = 0
				r, ferr := testnet.RunSwarm(ctx, dir+"-unconstrained", free)
				if !keep {
					defer os.RemoveAll(dir + "-unconstrained")
				}
				if ferr != nil {
					rep.Failure = "unconstrained: " + ferr.Error()
				} else {
					rep.Unconstrained = &r
					rep.Slowdown = rep.P2P.Last.Seconds() / r.Last.Seconds()
					if cerr := sc.CheckSlowdown(rep.Slowdown); cerr != nil {
						rep.Failure = cerr.Error()
					}
				}
			}
			if err == nil && sc.Baseline {
				fmt.Fprintf(cmd.ErrOrStderr(), "▶ baseline: the same hosts straight from the origin\n")
				base := spec
				// the no-P2P baseline is plain HTTP through shaped links: in-process
				base.NoP2P, base.Events, base.Backend = true, nil, testnet.BackendInProcess
				b, berr := testnet.RunSwarm(ctx, dir+"-baseline", base)
				if !keep {
					defer os.RemoveAll(dir + "-baseline")
				}
				if berr != nil {
					rep.Failure = "baseline: " + berr.Error()
				} else {
					rep.Baseline = &b
					rep.Speedup = b.Last.Seconds() / rep.P2P.Last.Seconds()
				}
			}
			if rep.Failure == "" && sc.BitTorrent {
				if terr := testnet.TorrentAvailable(); terr != nil {
					rep.TorrentSkipped = terr.Error()
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "▶ bittorrent: the same hosts as an aria2 swarm\n")
					tspec := spec
					tspec.Events = nil
					tr, terr := testnet.RunTorrentSwarm(ctx, dir+"-bittorrent", tspec)
					if !keep {
						defer os.RemoveAll(dir + "-bittorrent")
					}
					if terr != nil {
						rep.Failure = "bittorrent: " + terr.Error()
					} else {
						rep.Torrent = &tr
						rep.TorrentRatio = tr.Last.Seconds() / rep.P2P.Last.Seconds()
					}
				}
			}
			if rep.Failure == "" {
				if cerr := sc.Check(rep.P2P); cerr != nil {
					rep.Failure = cerr.Error()
				}
			}
			rep.Passed = rep.Failure == ""
			if pngPath != "" && len(rep.P2P.Completion) > 0 {
				f, err := os.Create(pngPath)
				if err != nil {
					return err
				}
				if err := testnet.WriteChart(f, rep.P2P, rep.Baseline); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			if err := clikit.Print(cmd.OutOrStdout(), output, rep, func(w io.Writer) error { return printRun(w, rep) }); err != nil {
				return err
			}
			if !rep.Passed {
				return fmt.Errorf("scenario %s failed: %s", sc.Name, rep.Failure)
			}
			return nil
		},
	}
	clikit.AddOutputFlag(cmd.Flags(), &output)
	cmd.Flags().StringVar(&pngPath, "png", "", "write a chart of every host's completion to this PNG file")
	cmd.Flags().StringVar(&logLevel, "log-level", "error", "nodes' log level: debug, info, warn, error")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the nodes' data directory")
	cmd.Flags().StringVar(&backend, "backend", "", "override the scenario's back end: inprocess, netns (root) or both (root; reports the ratio)")
	cmd.Flags().StringVar(&binDir, "bin-dir", "", "directory holding dfnode and scheduler for netns (default: next to dftestnet)")
	return cmd
}

func backendName(b string) string {
	if b == "" {
		return testnet.BackendInProcess
	}
	return b
}

func rate(b testnet.Bandwidth) string {
	if b == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.1f Mbit/s", float64(b)*8/1e6)
}

func printRun(w io.Writer, rep runReport) error {
	row := func(name string, r testnet.SwarmResult) {
		fmt.Fprintf(w, "%-9s %8.1fs %8.1fs %8.1fs %8.1fs %10.2f %9.3f× %6.2f\n", name, r.P50.Seconds(), r.P99.Seconds(),
			r.Last.Seconds(), r.Bound.Seconds(), r.Efficiency, r.OriginRatio, r.CPU.Seconds()/max(r.Elapsed.Seconds(), 1e-9))
	}
	fmt.Fprintf(w, "%-9s %9s %9s %9s %9s %10s %10s %6s\n", "run", "p50", "p99", "last", "bound", "efficiency", "origin", "cores")
	row("p2p", rep.P2P)
	if rep.Netns != nil {
		row("netns", *rep.Netns)
		fmt.Fprintf(w, "netns / in-process (last host): %.3f\n", rep.BackendRatio)
	}
	if rep.Unconstrained != nil {
		row("no-limit", *rep.Unconstrained)
		fmt.Fprintf(w, "the inter-IDC limit slowed the last host %.3f×\n", rep.Slowdown)
	}
	if rep.Baseline != nil {
		row("no-p2p", *rep.Baseline)
		fmt.Fprintf(w, "p2p is %.1f× faster than every host going to the origin\n", rep.Speedup)
	}
	if rep.Torrent != nil {
		row("aria2", *rep.Torrent)
		fmt.Fprintf(w, "p2p is %.2f× as fast as the aria2 BitTorrent swarm (aria2 origin bytes not measured)\n", rep.TorrentRatio)
	}
	if rep.TorrentSkipped != "" {
		fmt.Fprintf(w, "bittorrent baseline skipped: %s\n", rep.TorrentSkipped)
	}
	for _, r := range []*testnet.SwarmResult{&rep.P2P, rep.Netns, rep.Unconstrained} {
		if r != nil {
			printTraffic(w, *r)
		}
	}
	if len(rep.P2P.Killed) > 0 {
		fmt.Fprintf(w, "killed hosts (not counted): %v\n", rep.P2P.Killed)
	}
	status := "PASS"
	if !rep.Passed {
		status = "FAIL: " + rep.Failure
	}
	_, err := fmt.Fprintln(w, status)
	return err
}

// printTraffic prints a run's bytes by type: origin, host to host, and
// inside / across IDCs.
func printTraffic(w io.Writer, r testnet.SwarmResult) {
	t := r.Traffic
	if t == nil {
		return
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(w, "bytes (%s): origin %.1f MiB, host to host %.1f MiB: intra-IDC %.1f MiB, inter-IDC %.1f MiB (%.1f %% inside)\n",
		backendName(r.Backend), mib(r.OriginBytes), mib(t.PeerBytes), mib(t.IntraIDC), mib(t.InterIDC), 100*t.IntraRatio)
	for _, idc := range t.IDCs {
		fmt.Fprintf(w, "  %-6s %2d hosts sent %.1f MiB inside, %.1f MiB to other IDCs (%.1f %% inside)\n",
			idc.IDC, idc.Hosts, mib(idc.IntraIDC), mib(idc.InterIDC), 100*idc.IntraRatio)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note (%s): %s\n", backendName(r.Backend), n)
	}
}
