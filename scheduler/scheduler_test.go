package scheduler_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/testnet"
)

const pieceLen = 256 << 10

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func logger() testnet.Option {
	if os.Getenv("DF_TEST_LOG") == "" {
		return func(*testnet.ClusterOptions) {}
	}
	return testnet.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

func start(t *testing.T, n, scheds int, opts ...testnet.Option) *testnet.Cluster {
	t.Helper()
	ctx := testCtx(t)
	c, err := testnet.Start(ctx, t.TempDir(), n, append([]testnet.Option{testnet.WithSchedulers(scheds), logger()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.WaitConnected(ctx, n-1); err != nil {
		t.Fatal(err)
	}
	return c
}

// seeds makes the listed nodes seed peers.
func seeds(idx ...int) testnet.Option {
	return testnet.WithConfig(func(i int, cfg *node.Config) {
		for _, j := range idx {
			if i == j {
				cfg.Seed = true
			}
		}
	})
}

func origin(t *testing.T, data []byte) (*testnet.Origin, string) {
	t.Helper()
	o, err := testnet.NewOrigin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	o.Put("/file.bin", data, `"v1"`)
	return o, o.URL("/file.bin")
}

// downloadAll downloads url on the given nodes at once.
func downloadAll(ctx context.Context, t *testing.T, c *testnet.Cluster, url string, want []byte, nodes ...int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for k, i := range nodes {
		wg.Go(func() {
			cont, err := c.Node(i).Download(ctx, api.DownloadRequest{URL: url, PieceLength: pieceLen})
			got, err := testnet.Fetch(ctx, cont, err)
			if err == nil && !bytes.Equal(got, want) {
				err = errors.New("bytes differ")
			}
			errs[k] = err
		})
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", nodes[k], err)
		}
	}
}

func holds(t *testing.T, nd *testnet.Node, id protocol.TaskID) bool {
	t.Helper()
	info, err := nd.Stat(testCtx(t), id, true)
	return err == nil && info.Local && info.Task.Complete
}

func TestSeedPeerFetchesFirstAndOthersFollow(t *testing.T) {
	data := testnet.Payload(8<<20, 1)
	o, url := origin(t, data)
	c := start(t, 5, 1, seeds(0))
	downloadAll(testCtx(t), t, c, url, data, 1, 2, 3, 4)
	ratio := float64(o.BytesServed()) / float64(len(data))
	t.Logf("origin bytes / file size = %.3f", ratio)
	if ratio > 1.1 {
		t.Fatalf("origin served %.2f× the file", ratio)
	}
	id, err := protocol.URLTask{URL: url, PieceLength: pieceLen}.ID()
	if err != nil {
		t.Fatal(err)
	}
	if !holds(t, c.Node(0), id) {
		t.Fatal("the seed peer does not hold the task: it was not triggered")
	}
}

func TestSeedFailingAtSourcePeersGoToSourceWithinBudget(t *testing.T) {
	data := testnet.Payload(4<<20, 2)
	o, url := origin(t, data)
	c := start(t, 5, 1, seeds(0), testnet.WithConfig(func(i int, cfg *node.Config) {
		if i == 0 {
			cfg.Source.AllowedNetworks = nil // loopback blocked: the seed fails at the source
		}
	}))
	downloadAll(testCtx(t), t, c, url, data, 1, 2, 3, 4)
	ratio := float64(o.BytesServed()) / float64(len(data))
	t.Logf("origin bytes / file size = %.3f", ratio)
	if ratio > 3.05 { // the default back-to-source budget is 3
		t.Fatalf("origin served %.2f× the file: the budget was not kept", ratio)
	}
}

func importBytes(t *testing.T, nd *testnet.Node, data []byte) protocol.TaskID {
	t.Helper()
	id, err := nd.ImportBytes(testCtx(t), data, pieceLen)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func export(ctx context.Context, nd *testnet.Node, id protocol.TaskID, want []byte) error {
	cont, err := nd.Export(ctx, id, storage.KindContent)
	got, err := testnet.Fetch(ctx, cont, err)
	if err != nil {
		return fmt.Errorf("%s: %w", nd.Name, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: bytes differ", nd.Name)
	}
	return nil
}

func TestStatAndDeleteThroughTheScheduler(t *testing.T) {
	c := start(t, 3, 1)
	data := testnet.Payload(1<<20, 3)
	id := importBytes(t, c.Node(0), data)
	ctx := testCtx(t)
	info, err := c.Node(2).Stat(ctx, id, false)
	if err != nil || info.Local || info.Providers == 0 {
		t.Fatalf("stat through the scheduler: %+v, %v", info, err)
	}
	if err := export(ctx, c.Node(1), id, data); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(2).Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	err = testnet.WaitFor(ctx, 50*time.Millisecond, func() bool { return !holds(t, c.Node(0), id) && !holds(t, c.Node(1), id) })
	if err != nil {
		t.Fatal("the cluster-wide delete did not reach the holders")
	}
}

func TestOwnerSchedulerKilledMidDownload(t *testing.T) {
	c := start(t, 3, 2, testnet.WithConfig(func(i int, cfg *node.Config) {
		if i == 0 {
			cfg.Limits.UploadRate = 4 << 20 // ~4 s for the file: time to kill the owner
		}
	}))
	data := testnet.Payload(16<<20, 4)
	id := importBytes(t, c.Node(0), data)
	ctx := testCtx(t)
	errc := make(chan error, 1)
	go func() { errc <- export(ctx, c.Node(1), id, data) }()
	// Mid-download: node 1 holds some verified pieces, not all.
	if err := testnet.WaitFor(ctx, 20*time.Millisecond, func() bool {
		info, err := c.Node(1).Stat(ctx, id, true)
		return err == nil && info.Local && info.Task.VerifiedPieces > 0
	}); err != nil {
		t.Fatal(err)
	}
	// Stop the task's owner: the first scheduler on the ring that knows the task.
	var stopped string
	for _, s := range c.Schedulers() {
		if s.Knows(id) {
			stopped = s.Name
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if stopped == "" {
		t.Fatal("no scheduler knows the task")
	}
	if err := <-errc; err != nil {
		t.Fatalf("after %s was stopped: %v", stopped, err)
	}
}

func TestAllSchedulersDownFallsBackToTheDHT(t *testing.T) {
	c := start(t, 3, 1, testnet.WithNodeOptions(func(int) []node.Option {
		return []node.Option{node.WithDownloadConfig(func(cfg *download.Config) { cfg.FindTimeout = 20 * time.Second })}
	}))
	data := testnet.Payload(2<<20, 5)
	id := importBytes(t, c.Node(0), data)
	for _, s := range c.Schedulers() {
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	if err := export(testCtx(t), c.Node(1), id, data); err != nil {
		t.Fatal(err)
	}
}

func TestSlowParentIsAvoided(t *testing.T) {
	c := start(t, 4, 1, testnet.WithConfig(func(i int, cfg *node.Config) {
		if i == 0 {
			cfg.Limits.UploadRate = 256 << 10 // a slow parent
		}
	}))
	data := testnet.Payload(8<<20, 6)
	id := importBytes(t, c.Node(0), data)
	importBytes(t, c.Node(1), data)
	start := time.Now()
	if err := export(testCtx(t), c.Node(2), id, data); err != nil {
		t.Fatal(err)
	}
	// From the slow parent alone this takes 32 s.
	if d := time.Since(start); d > 25*time.Second {
		t.Fatalf("took %v: the download stayed on the slow parent", d)
	}
}
