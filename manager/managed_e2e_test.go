package manager_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/testnet"
)

func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	if err := testnet.WaitFor(ctx, 20*time.Millisecond, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// TestNodesTakeTheRingFromTheManager: a scheduler registers with the
// manager by keepalive, nodes that know only the manager put it on their
// ring and download through it; with the manager stopped, a restarted
// node runs on its cached config and still downloads through the scheduler.
func TestNodesTakeTheRingFromTheManager(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	c, err := testnet.Start(ctx, t.TempDir(), 0, testnet.WithConfig(func(i int, cfg *node.Config) { cfg.Seed = i == 0 }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.StartManager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if err := m.Do(ctx, "POST", "/api/v1/clusters", map[string]any{"name": "c1", "default": true}, nil); err != nil {
		t.Fatal(err)
	}
	tok, err := m.ClusterToken(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	c.UseManager(m.URL(), tok)
	sched, err := c.AddManagedScheduler(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.AddNode(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range c.Nodes() {
		waitUntil(t, ctx, nd.Name+" to put the manager's scheduler on its ring", func() bool {
			return slices.Equal(nd.Schedulers(), []peer.ID{sched.ID()})
		})
	}
	if cfg, fromCache, err := sched.ManagerConfig(); err != nil || fromCache || cfg.Cluster.Name != "c1" {
		t.Fatalf("scheduler's manager config: %+v cached=%v %v", cfg, fromCache, err)
	}

	origin, err := testnet.NewOrigin()
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	download := func(nd *testnet.Node, path string) protocol.TaskID {
		t.Helper()
		data := testnet.Payload(3<<20, uint64(len(path)))
		origin.Put(path, data, "")
		url := origin.URL(path)
		content, err := nd.Download(ctx, api.DownloadRequest{URL: url})
		got, err := testnet.Fetch(ctx, content, err)
		if err != nil || len(got) != len(data) {
			t.Fatalf("%s: download %s: %d bytes, %v", nd.Name, path, len(got), err)
		}
		id, _ := protocol.URLTask{URL: url}.ID()
		return id
	}
	if id := download(c.Node(1), "/one.bin"); !sched.Knows(id) {
		t.Fatal("the download did not go through the scheduler the manager announced")
	}

	// The manager goes away; the data path does not need it.
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(c.Node(1).Dir, node.DynconfigCacheFile)); err != nil {
		t.Fatalf("no config cache on disk: %v", err)
	}
	nd, err := c.Restart(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := nd.Schedulers(); !slices.Equal(got, []peer.ID{sched.ID()}) {
		t.Fatalf("restarted without the manager, the node's ring is %v", got)
	}
	if id := download(nd, "/two.bin"); !sched.Knows(id) {
		t.Fatal("with the manager down, the restarted node did not use the cached ring")
	}
}
