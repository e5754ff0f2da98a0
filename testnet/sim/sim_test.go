package sim_test

import (
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/protocol/units"
	"github.com/dragonfly-p2p/df/testnet/sim"
)

const mbit25 = 25_000_000 / 8

// small is the 16-host shaped swarm of docs/benchmarks.md (64 MiB, 1 MiB
// pieces, 25 Mbit/s everywhere, one scheduler).
func small() sim.Config {
	return sim.Config{Peers: 16, Size: 64 * int64(units.MiB), PieceLength: uint32(units.MiB), Up: mbit25, Down: mbit25, OriginUp: mbit25, RandSeed: 1}
}

func TestSmallSwarm(t *testing.T) {
	res, err := sim.Run(small())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res, res.Decisions)
	if res.Failed != 0 || res.OriginRatio < 0.999 || res.OriginRatio > 1.1 {
		t.Fatalf("failed %d, origin %.3f×", res.Failed, res.OriginRatio)
	}
	if res.Last < res.Bound || res.Efficiency > 1 {
		t.Fatalf("last %.1fs beats the bound %.1fs: the model creates bandwidth", res.Last, res.Bound)
	}
	// Two slots per host rarely fill a 25 Mbit/s uplink whose children each
	// fetch from several parents: the node's queue stretches, and so must
	// the model's.
	if res.Stretched == 0 {
		t.Fatal("no upload slot was stretched")
	}
}

// TestScaleTargets checks the targets (origin ≤ 1.1 × the size,
// no parent above 2 × the mean upload) at 1,000 peers; DF_SIM_LARGE=1
// runs it (about a minute: a target check, not a unit test).
func TestScaleTargets(t *testing.T) {
	if os.Getenv("DF_SIM_LARGE") == "" {
		t.Skip("DF_SIM_LARGE=1 runs 1,000 simulated peers")
	}
	cfg := sim.Config{Peers: 1000, Size: 256 * int64(units.MiB), Up: mbit25, Down: mbit25, OriginUp: mbit25, RandSeed: 2}
	res, err := sim.Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.OriginRatio > 1.1 || res.UploadMaxOverMean > 2 {
		t.Errorf("origin %.3f× (target ≤ 1.1), upload max/mean %.2f (target ≤ 2)", res.OriginRatio, res.UploadMaxOverMean)
	}
}

func TestBadConfig(t *testing.T) {
	for name, cfg := range map[string]sim.Config{
		"no peers":  {Size: 1, Up: 1, Down: 1, OriginUp: 1},
		"no size":   {Peers: 1, Up: 1, Down: 1, OriginUp: 1},
		"no origin": {Peers: 1, Size: 1, Up: 1, Down: 1},
		"too many":  {Peers: 1 << 20, Size: 1, Up: 1, Down: 1, OriginUp: 1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := sim.Run(cfg); !errors.Is(err, sim.ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestUnfinished(t *testing.T) {
	cfg := small()
	cfg.MaxTime = 5 * time.Second
	if _, err := sim.Run(cfg); !errors.Is(err, sim.ErrUnfinished) {
		t.Fatalf("err = %v, want ErrUnfinished", err)
	}
}

// BenchmarkSim simulates DF_SIM_PEERS peers (default 1,000) sharing
// DF_SIM_MIB MiB (default 256) at 25 Mbit/s and reports the scheduler's
// time per decision and the run's figures as metrics.
func BenchmarkSim(b *testing.B) {
	peers, mib := envInt("DF_SIM_PEERS", 1000), envInt("DF_SIM_MIB", 256)
	for b.Loop() {
		res, err := sim.Run(sim.Config{Peers: peers, Size: int64(mib) * int64(units.MiB), Up: mbit25, Down: mbit25, OriginUp: mbit25, RandSeed: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.PerDecision.Nanoseconds()), "ns/decision")
		b.ReportMetric(res.SchedulerCPU.Seconds(), "sched-s")
		b.ReportMetric(res.OriginRatio, "origin-ratio")
		b.ReportMetric(res.UploadMaxOverMean, "upload-max/mean")
		b.ReportMetric(res.Efficiency, "efficiency")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
