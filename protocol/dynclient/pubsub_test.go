package dynclient_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/dragonfly-p2p/df/manager/dynconfig"
	. "github.com/dragonfly-p2p/df/protocol/dynclient"
	"github.com/dragonfly-p2p/df/protocol/p2p"
)

func newHost(t testing.TB) host.Host {
	h, err := p2p.NewHost(t.TempDir(), p2p.NewGater(), p2p.WithListen("/ip4/127.0.0.1/tcp/0"), p2p.WithLimits(rcmgr.InfiniteLimits), p2p.WithConnWatermarks(2048, 4096))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// pushSetup starts a manager API, a publishing libp2p host and n subscribed
// nodes, each running a Client that follows the topic. It returns a function
// that makes a config change and waits until every client holds it.
func pushSetup(t testing.TB, n int) func() time.Duration {
	hs, st, dyn, tok := manager(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hub := newHost(t)
	ps, err := pubsub.NewGossipSub(ctx, hub, pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(Topic)
	if err != nil {
		t.Fatal(err)
	}
	dyn.OnVersion(func(v string) { Publish(ctx, topic, v) })
	var clients []*Client[dynconfig.NodeConfig]
	var hosts []host.Host
	for i := 0; i < n; i++ {
		h := newHost(t)
		if err := h.Connect(ctx, peer.AddrInfo{ID: hub.ID(), Addrs: hub.Addrs()}); err != nil {
			t.Fatal(err)
		}
		// Nodes know a few other nodes too, as through the DHT.
		for j := max(0, len(hosts)-3); j < len(hosts); j++ {
			if err := h.Connect(ctx, peer.AddrInfo{ID: hosts[j].ID(), Addrs: hosts[j].Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
		hosts = append(hosts, h)
		nps, err := pubsub.NewGossipSub(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		nt, err := nps.Join(Topic)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := nt.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		c := New[dynconfig.NodeConfig](hs.URL+"/api/v1/dynconfig/node", tok, filepath.Join(t.TempDir(), fmt.Sprintf("c%d.json", i)), WithInterval(time.Hour), WithMinGap(0), WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))))
		clients = append(clients, c)
		go c.Run(ctx)
		go c.Follow(ctx, sub, func(cfg dynconfig.NodeConfig) string { return cfg.Version })
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(topic.ListPeers()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d subscribers joined", len(topic.ListPeers()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	round := 0
	return func() time.Duration {
		round++
		start := time.Now()
		st.PutConfig(dynconfig.NodeConfigName, "root", map[string]any{"round": round})
		dyn.Invalidate() // builds the new snapshot and publishes its version
		v, _ := dyn.Version()
		for _, c := range clients {
			for {
				cur, _, err := c.Current()
				if err == nil && cur.Version == v {
					break
				}
				if time.Since(start) > 20*time.Second {
					got := 0
					for _, c := range clients {
						if cur, _, _ := c.Current(); cur.Version == v {
							got++
						}
					}
					t.Fatalf("round %d: %d of %d clients got version %s; hub sees %d peers", round, got, n, v, len(topic.ListPeers()))
				}
				time.Sleep(time.Millisecond)
			}
		}
		return time.Since(start)
	}
}

func TestPushReachesSubscribers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 11 libp2p hosts")
	}
	change := pushSetup(t, 10)
	if d := change(); d > 10*time.Second {
		t.Fatalf("took %v", d)
	}
}

// BenchmarkPushTo100 measures a config change reaching 100 in-process nodes:
// the manager publishes the new version on the gossipsub topic, each node
// pulls its config over HTTP; the time ends when the last node holds it.
func BenchmarkPushTo100(b *testing.B) {
	change := pushSetup(b, 100)
	var worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d := change(); d > worst {
			worst = d
		}
	}
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
}
