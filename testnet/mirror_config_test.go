package testnet_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"

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
	var blobBytes atomic.Int64
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			w = &countingResponse{ResponseWriter: w, n: &blobBytes}
		}
		inner.ServeHTTP(w, r)
	}))
	defer reg.Close()
	regHost := strings.TrimPrefix(reg.URL, "http://")
	img, err := random.Image(3<<20, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := crane.Push(img, regHost+"/library/app:v1", crane.Insecure); err != nil {
		t.Fatal(err)
	}
	var layerBytes int64
	layers, _ := img.Layers()
	for _, l := range layers {
		n, _ := l.Size()
		layerBytes += n
	}
	blobBytes.Store(0)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testnet.Start(ctx, filepath.Join(t.TempDir(), "cluster"), nodes, testnet.WithConfig(func(_ int, cfg *node.Config) {
		cfg.Mirror.Enabled = true
		cfg.Mirror.Listen = "127.0.0.1:0"
		cfg.Mirror.DefaultRegistry = regHost
		cfg.Mirror.Registries = []mirror.Registry{{Name: regHost, Scheme: "http", PublicRepositories: []string{"library/*"}}}
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
			pulled, err := crane.Pull(addr+"/library/app:v1", crane.Insecure, crane.WithContext(ctx))
			if err != nil {
				errs[i] = err
				return
			}
			ls, err := pulled.Layers()
			if err != nil {
				errs[i] = err
				return
			}
			for _, l := range ls {
				rc, err := l.Compressed()
				if err == nil {
					_, err = io.Copy(io.Discard, rc) // checks the digest at EOF
					rc.Close()
				}
				if err != nil {
					errs[i] = fmt.Errorf("node%d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ratio := float64(blobBytes.Load()) / float64(layerBytes)
	t.Logf("%d pulls through %d nodes: the registry sent %.2f× the image's layers", nodes, nodes, ratio)
	if ratio > 1.25 {
		t.Fatalf("the registry sent %.2f× the layers for %d pulls (want about 1×)", ratio, nodes)
	}
}
