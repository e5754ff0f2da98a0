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
// runs at the configured rate (not faster: the shaper works; not much
// slower: QUIC's congestion control and packet sizes get along with it).
// Loose bounds on purpose, the machine is shared and noisy.
func TestShapedQUICThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 8 MiB at 25 Mbit/s")
	}
	const size = 8 << 20
	rate := shape.Mbit(25)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := testnet.Start(ctx, t.TempDir(), 2, testnet.WithLinks(func(int) *shape.Link {
		return shape.NewLink(shape.Spec{Up: rate, Down: rate, Latency: 5 * time.Millisecond})
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitConnected(ctx, 1); err != nil {
		t.Fatal(err)
	}
	data := testnet.Payload(size, 7)
	info, err := c.Node(0).Import(ctx, api.ImportRequest{Kind: storage.KindContent, Size: size, PieceLength: 1 << 20}, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	id, err := protocol.ParseTaskID(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cont, err := c.Node(1).Export(ctx, id, storage.KindContent)
	got, err := testnet.Fetch(ctx, cont, err)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	ideal := time.Duration(float64(size) / float64(rate) * float64(time.Second))
	t.Logf("%d MiB in %v at %.0f Mbit/s configured: %.1f Mbit/s, %.2f of the rate", size>>20, took.Round(time.Millisecond),
		float64(rate)*8/1e6, float64(size)*8/took.Seconds()/1e6, ideal.Seconds()/took.Seconds())
	if took < ideal*9/10 {
		t.Fatalf("took %v, below 0.9 × %v: the link is not shaped", took, ideal)
	}
	if took > ideal*2 {
		t.Fatalf("took %v, over 2 × %v: shaping wastes the link", took, ideal)
	}
}
