package probe

import (
	"context"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol/p2p"
)

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := p2p.NewHost(t.TempDir(), p2p.NewGater(), p2p.WithListen("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestProbe(t *testing.T) {
	a, b, silent := newHost(t), newHost(t), newHost(t)
	Register(b)
	ctx := context.Background()
	res := ProbeAll(ctx, a, []peer.AddrInfo{
		{ID: b.ID(), Addrs: b.Addrs()},
		{ID: silent.ID(), Addrs: silent.Addrs()}, // no probe handler
	})
	if res[0].Err != nil || res[0].RTT <= 0 {
		t.Fatalf("probe of a live host: %+v", res[0])
	}
	if res[1].Err == nil {
		t.Fatal("probe of a host without the protocol succeeded")
	}
}
