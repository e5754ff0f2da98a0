package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/node/discovery"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/admission"
	"github.com/dragonfly-p2p/df/protocol/p2p"
)

var secret = []byte("discovery-test-cluster-secret-0123456789")

type member struct {
	h    host.Host
	adm  *admission.Admission
	disc *discovery.Discovery
}

// start runs one cluster member: host, admission, gossipsub, discovery.
func start(t *testing.T, ctx context.Context, boot ...peer.AddrInfo) member {
	t.Helper()
	gater := p2p.NewGater()
	h, err := p2p.NewHost(t.TempDir(), gater, p2p.WithListen("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	adm, err := admission.New(h, secret, gater)
	if err != nil {
		t.Fatal(err)
	}
	gated := adm.GatedHost(h)
	ps, err := pubsub.NewGossipSub(ctx, gated)
	if err != nil {
		t.Fatal(err)
	}
	d, err := discovery.New(ctx, gated, adm, ps, discovery.WithBootstrap(boot...))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return member{h: h, adm: adm, disc: d}
}

func addrInfo(h host.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

// Nodes that join at the same moment each ask the bootstrap peer who it
// knows before it knows the other: a node must look again while its
// routing table is small, or the two never meet. Here the third node
// reaches the bootstrap peer without a lookup of its own, after the second
// finished its join: only the second's later lookups can bring them
// together.
func TestNodesThatJoinedTogetherFindEachOther(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	boot := start(t, ctx)
	early := start(t, ctx, addrInfo(boot.h))
	waitFor(t, ctx, "the early node joins", func() bool { return early.disc.DHT().RoutingTable().Size() >= 1 })

	late := start(t, ctx) // no bootstrap: no lookup of its own
	if err := late.h.Connect(ctx, addrInfo(boot.h)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the early node meets the late one", func() bool {
		return early.adm.IsMember(late.h.ID()) && early.disc.DHT().RoutingTable().Find(late.h.ID()) != ""
	})
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Many tasks provided at once (a runtime pulling an image's layers
// together) are announced side by side, and once WaitProvided returns for
// one, another member's lookup finds this node for it at once: that is
// what lets peers starting the same download find each other before the
// origin.
func TestWaitProvidedMeansFindable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	boot := start(t, ctx)
	a := start(t, ctx, addrInfo(boot.h))
	b := start(t, ctx, addrInfo(boot.h))
	waitFor(t, ctx, "members join", func() bool {
		return a.disc.DHT().RoutingTable().Size() >= 2 && b.disc.DHT().RoutingTable().Size() >= 2
	})

	unknown := protocol.ContentTaskID(protocol.SHA256([]byte("never provided")))
	if err := a.disc.WaitProvided(ctx, unknown); err != nil {
		t.Fatalf("WaitProvided on a task never provided: %v, want nil at once", err)
	}

	const tasks = 24
	ids := make([]protocol.TaskID, tasks)
	for i := range ids {
		ids[i] = protocol.ContentTaskID(protocol.SHA256(fmt.Appendf(nil, "layer %d", i)))
		a.disc.Provide(ids[i])
	}
	for i, id := range ids {
		if err := a.disc.WaitProvided(ctx, id); err != nil {
			t.Fatalf("task %d: WaitProvided: %v", i, err)
		}
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		var found bool
		for pi := range b.disc.FindProviders(fctx, id, 1) {
			found = found || pi.ID == a.h.ID()
		}
		fcancel()
		if !found {
			t.Fatalf("task %d: provided (WaitProvided returned) but another member's lookup does not find the provider", i)
		}
	}

	ctxDone, cancelDone := context.WithCancel(ctx)
	cancelDone()
	late := protocol.ContentTaskID(protocol.SHA256([]byte("late")))
	b.disc.Provide(late)
	if err := b.disc.WaitProvided(ctxDone, late); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitProvided with an ended context: %v, want nil or context.Canceled", err)
	}
}
