package testnet_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/mirror"
	"github.com/dragonfly-p2p/df/testnet"
)

// TestMirrorFromNodeConfig: in-process nodes (real libp2p, real stores)
// with the mirror enabled through node.Config's mirror section serve a
// multi-layer image from a real registry to crane, all at once, and the
// registry sends each layer about once.
func TestMirrorFromNodeConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-node cluster")
	}
	const nodes = 4
	reg, err := testnet.NewRegistry("library/app:v1", 3<<20, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testnet.Start(ctx, filepath.Join(t.TempDir(), "cluster"), nodes, testnet.WithConfig(func(_ int, cfg *node.Config) {
		cfg.Mirror.Enabled = true
		cfg.Mirror.Listen = "127.0.0.1:0"
		cfg.Mirror.DefaultRegistry = reg.Host()
		cfg.Mirror.Registries = []mirror.Registry{{Name: reg.Host(), Scheme: "http", PublicRepositories: []string{"library/*"}}}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitConnected(ctx, nodes-1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range nodes {
		addr := c.Node(i).MirrorAddr()
		if addr == "" {
			t.Fatalf("node%d: the mirror is not listening", i)
		}
		wg.Go(func() {
			if err := testnet.PullImage(ctx, addr, reg.Ref()); err != nil {
				errs[i] = fmt.Errorf("node%d: %w", i, err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ratio := float64(reg.BlobBytes()) / float64(reg.ImageBytes())
	t.Logf("%d pulls through %d nodes: the registry sent %.2f× the image's layers", nodes, nodes, ratio)
	if ratio > 1.25 {
		t.Fatalf("the registry sent %.2f× the layers for %d pulls (want about 1×)", ratio, nodes)
	}
}
