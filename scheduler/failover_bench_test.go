package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/testnet"
)

// BenchmarkOwnerFailover is the failover figure of docs/benchmarks.md: the
// download of TestOwnerSchedulerKilledMidDownload (16 MiB from a parent
// limited to 4 MiB/s, two schedulers) timed undisturbed and with the task's
// owner scheduler stopped mid-download, side by side in each iteration.
// Target: the disturbed download takes at most 1.5× the undisturbed one.
func BenchmarkOwnerFailover(b *testing.B) {
	data := testnet.Payload(16<<20, 4)
	for range b.N {
		calm := failoverRun(b, data, false)
		killed := failoverRun(b, data, true)
		b.Logf("undisturbed %v, owner stopped mid-download %v: %.2f×", calm, killed, killed.Seconds()/calm.Seconds())
		b.ReportMetric(calm.Seconds(), "undisturbed-s")
		b.ReportMetric(killed.Seconds(), "failover-s")
		b.ReportMetric(killed.Seconds()/calm.Seconds(), "ratio")
	}
}

func failoverRun(b *testing.B, data []byte, kill bool) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testnet.Start(ctx, b.TempDir(), 3, testnet.WithSchedulers(2), logger(),
		testnet.WithConfig(func(i int, cfg *node.Config) {
			if i == 0 {
				cfg.Limits.UploadRate = 4 << 20
			}
		}))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitConnected(ctx, 2); err != nil {
		b.Fatal(err)
	}
	id, err := c.Node(0).ImportBytes(ctx, data, pieceLen)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- export(ctx, c.Node(1), id, data) }()
	if kill {
		if err := testnet.WaitFor(ctx, 20*time.Millisecond, func() bool {
			info, err := c.Node(1).Stat(ctx, id, true)
			return err == nil && info.Local && info.Task.VerifiedPieces > 0
		}); err != nil {
			b.Fatal(err)
		}
		stopped := false
		for _, s := range c.Schedulers() {
			if s.Knows(id) {
				if err := s.Stop(); err != nil {
					b.Fatal(err)
				}
				stopped = true
				break
			}
		}
		if !stopped {
			b.Fatal("no scheduler knows the task")
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
