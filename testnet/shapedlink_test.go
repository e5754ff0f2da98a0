package testnet_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/testnet"
	"github.com/dragonfly-p2p/df/testnet/shape"
)

// Two real libp2p hosts over QUIC through shaped sockets: the transfer
// cannot run faster than the configured rate (the shaper works). How close
// it comes to the rate is a performance figure, measured by
// BenchmarkShapedQUIC, not asserted here: under the race detector beside
// other packages a shared CI machine halves it.
func TestShapedQUICThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 8 MiB at 25 Mbit/s")
	}
	const size = 8 << 20
	rate := shape.Mbit(25)
	took := shapedTransfer(t, size, rate)
	ideal := time.Duration(float64(size) / float64(rate) * float64(time.Second))
	t.Logf("%d MiB in %v at %.0f Mbit/s configured: %.1f Mbit/s, %.2f of the rate", size>>20, took.Round(time.Millisecond),
		float64(rate)*8/1e6, float64(size)*8/took.Seconds()/1e6, ideal.Seconds()/took.Seconds())
	if took < ideal*9/10 {
		t.Fatalf("took %v, below 0.9 × %v: the link is not shaped", took, ideal)
	}
}

// BenchmarkShapedQUIC reports how much of a shaped 25 Mbit/s link one
// piece transfer between two real hosts uses (of-rate: 1 is the link's
// rate; QUIC's congestion control and packet sizes must get along with
// the shaper, so expect ≥ 0.9 on an idle machine).
func BenchmarkShapedQUIC(b *testing.B) {
	const size = 8 << 20
	rate := shape.Mbit(25)
	ideal := float64(size) / float64(rate)
	var sum float64
	for b.Loop() {
		sum += ideal / shapedTransfer(b, size, rate).Seconds()
	}
	b.ReportMetric(sum/float64(b.N), "of-rate")
}

// shapedTransfer imports size bytes on one host and times the other's
// export of them, both hosts' links shaped to rate up and down with 5 ms
// of latency.
func shapedTransfer(tb testing.TB, size int, rate int64) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := testnet.Start(ctx, tb.TempDir(), 2, testnet.WithLinks(func(int) *shape.Link {
		return shape.NewLink(shape.Spec{Up: rate, Down: rate, Latency: 5 * time.Millisecond})
	}))
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitConnected(ctx, 1); err != nil {
		tb.Fatal(err)
	}
	data := testnet.Payload(size, 7)
	info, err := c.Node(0).Import(ctx, api.ImportRequest{Kind: storage.KindContent, Size: int64(size), PieceLength: 1 << 20}, bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := protocol.ParseTaskID(info.ID)
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	cont, err := c.Node(1).Export(ctx, id, storage.KindContent)
	got, err := testnet.Fetch(ctx, cont, err)
	took := time.Since(start)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		tb.Fatal("content differs")
	}
	return took
}
