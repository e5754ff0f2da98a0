package dftestnet

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/protocol/units"
	"github.com/dragonfly-p2p/df/scheduler/scheduling"
	"github.com/dragonfly-p2p/df/testnet"
	"github.com/dragonfly-p2p/df/testnet/sim"
)

// bandwidthFlag is a --flag taking "25Mbit", "1Gbit" or "3MiB" (per second).
type bandwidthFlag struct{ v *testnet.Bandwidth }

func (b bandwidthFlag) String() string {
	if b.v == nil {
		return ""
	}
	return fmt.Sprintf("%gMbit", float64(*b.v)*8/1e6)
}

func (b bandwidthFlag) Set(s string) error {
	v, err := testnet.ParseBandwidth(s)
	if err != nil {
		return err
	}
	if v <= 0 {
		return errors.New("must be positive")
	}
	*b.v = v
	return nil
}

func (bandwidthFlag) Type() string { return "rate" }

func newSimCommand() *cobra.Command {
	var (
		output                string
		peers, candidates     int
		size                  = units.GiB
		pieceLength           units.ByteSize
		bandwidth             = testnet.Bandwidth(25_000_000 / 8)
		originBW              testnet.Bandwidth
		seed, trace           bool
		arrival, step, maxDur time.Duration
		randSeed              uint64
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate a swarm of thousands of peers driven by the real scheduler code",
		Long: `sim runs a flow-level simulation of one download shared by --peers hosts:
no libp2p, no bytes, but the real scheduler packages (resource, evaluator,
scheduling) make every decision, fed with simulated piece results, host
announcements and completions exactly as the schedule service feeds them.
Piece transfers are flows sharing each host's uplink and downlink fairly;
every host picks pieces as dfnode does (rarest first among what a parent
holds, 3 streams per parent, upload slots that stretch while the uplink
idles, one origin fetch in piece order when sent back to source). See the
testnet/sim package comment for what is and is not modelled.

It reports origin bytes ÷ size (back-to-source ratio), parent upload
balance (busiest peer ÷ mean), completion p50/p99/last against the
Kumar–Ross bound, and the time spent in the scheduler's calls (per decision
and in total). Times are simulated seconds; 10,000 peers × 1 GiB takes
about a minute of CPU.`,
		Example: `  dftestnet sim --peers 10000 --size 1GiB --bandwidth 25Mbit
  dftestnet sim --peers 16 --size 64MiB --piece-length 1MiB --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clikit.CheckFormat(output); err != nil {
				return err
			}
			if originBW == 0 {
				originBW = bandwidth
			}
			if pieceLength < 0 || pieceLength > 64*units.MiB {
				return clikit.UsageError(fmt.Errorf("--piece-length %v: want 0 (automatic) up to 64MiB", pieceLength))
			}
			cfg := sim.Config{Peers: peers, Size: int64(size), PieceLength: uint32(pieceLength), Up: int64(bandwidth), Down: int64(bandwidth),
				OriginUp: int64(originBW), Seed: seed, Arrival: arrival, Step: step, MaxTime: maxDur, RandSeed: randSeed,
				Scheduling: scheduling.Config{CandidateLimit: candidates}}
			fmt.Fprintf(cmd.ErrOrStderr(), "▶ simulating %d peers, %v at %s up/down, origin %s (bound %.1fs)\n",
				peers, size, rate(bandwidth), rate(originBW), cfg.Bound())
			res, err := sim.Run(cfg)
			if errors.Is(err, sim.ErrConfig) {
				return clikit.UsageError(err)
			}
			rep := simReport{Result: res}
			if err != nil {
				rep.Failure = err.Error()
			}
			if !trace {
				rep.Trace = nil
			}
			if perr := clikit.Print(cmd.OutOrStdout(), output, rep, func(w io.Writer) error { return printSim(w, rep) }); perr != nil {
				return perr
			}
			return err
		},
	}
	f := cmd.Flags()
	clikit.AddOutputFlag(f, &output)
	f.IntVar(&peers, "peers", 10_000, "simulated peers downloading the file")
	f.Var(&size, "size", "content size")
	f.Var(&pieceLength, "piece-length", "piece length (0: the automatic rule, 4 MiB for 1 GiB)")
	f.Var(bandwidthFlag{&bandwidth}, "bandwidth", "every peer's upload and download rate (25Mbit, 1Gbit, 3MiB)")
	f.Var(bandwidthFlag{&originBW}, "origin-bandwidth", "the origin's upload rate (default: --bandwidth)")
	f.BoolVar(&seed, "seed", false, "add a seed peer that the scheduler triggers")
	f.DurationVar(&arrival, "arrival", 0, "spread peer starts uniformly over this time (0: all at once)")
	f.DurationVar(&step, "step", 100*time.Millisecond, "simulation time step")
	f.DurationVar(&maxDur, "max-time", 24*time.Hour, "give up after this much simulated time")
	f.IntVar(&candidates, "candidate-limit", 0, "scheduler candidate-limit (0: the scheduler's default)")
	f.Uint64Var(&randSeed, "rand-seed", 1, "random seed (runs are repeatable)")
	f.BoolVar(&trace, "trace", false, "also print the swarm every 10 simulated seconds")
	return cmd
}

// simReport is `dftestnet sim`'s JSON output.
type simReport struct {
	sim.Result
	Failure string `json:"failure,omitempty"`
}

func printSim(w io.Writer, r simReport) error {
	fmt.Fprintf(w, "peers                %d (%d pieces of %v)\n", r.Peers, r.Pieces, units.ByteSize(r.PieceLength))
	fmt.Fprintf(w, "origin bytes         %.3f × the size\n", r.OriginRatio)
	fmt.Fprintf(w, "upload balance       busiest peer %.2f × the mean (p99 %.2f ×)\n", r.UploadMaxOverMean, r.UploadP99OverMean)
	if r.SeedUploadRatio > 0 {
		fmt.Fprintf(w, "seed upload          %.2f × the size\n", r.SeedUploadRatio)
	}
	fmt.Fprintf(w, "completion           p50 %.1fs  p99 %.1fs  last %.1fs  (bound %.1fs, efficiency %.2f)\n", r.P50, r.P99, r.Last, r.Bound, r.Efficiency)
	if r.Failed > 0 {
		fmt.Fprintf(w, "failed peers         %d\n", r.Failed)
	}
	n := 0
	for _, v := range r.Decisions {
		n += v
	}
	fmt.Fprintf(w, "scheduler            %v in its calls, %v per decision, %d decisions %v\n",
		r.SchedulerCPU.Round(time.Millisecond), r.PerDecision.Round(10*time.Nanosecond), n, r.Decisions)
	fmt.Fprintf(w, "busy answers         %d (piece requests refused: upload slots full)\n", r.Busy)
	fmt.Fprintf(w, "stretched slots      %d (uploads granted beyond a host's slots while its uplink idled)\n", r.Stretched)
	fmt.Fprintf(w, "wall time            %v\n", r.Wall.Round(time.Millisecond))
	for _, s := range r.Trace {
		fmt.Fprintf(w, "t=%6.0fs holders %6d done %6d waiting %6d parents %5.2f flows %7d (origin %d) rate %8.1f MB/s\n",
			s.T, s.Holders, s.Done, s.Waiting, s.Parents, s.Flows, s.Origin, s.Rate/1e6)
	}
	if r.Failure != "" {
		fmt.Fprintf(w, "FAIL: %s\n", r.Failure)
	}
	return nil
}
