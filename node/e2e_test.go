package node_test

import (
	"bytes"
	"context"
	"errors"
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

const pieceLen = 256 << 10 // small pieces: many of them in small files

func payload(n int, seed uint64) []byte { return testnet.Payload(n, seed) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// shortFind makes nodes give up on a task nobody has after 2 s.
func shortFind() testnet.Option {
	return testnet.WithNodeOptions(func(int) []node.Option {
		return []node.Option{node.WithDownloadConfig(func(cfg *download.Config) { cfg.FindTimeout = 2 * time.Second })}
	})
}

func startCluster(t *testing.T, n int, opts ...testnet.Option) *testnet.Cluster {
	t.Helper()
	ctx := testCtx(t)
	if os.Getenv("DF_TEST_LOG") != "" { // every node's debug log on stderr
		opts = append(opts, testnet.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	c, err := testnet.Start(ctx, t.TempDir(), n, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.WaitConnected(ctx, n-1); err != nil {
		t.Fatal(err)
	}
	return c
}

func importBytes(t *testing.T, nd *testnet.Node, data []byte) protocol.TaskID {
	t.Helper()
	id, err := nd.ImportBytes(testCtx(t), data, pieceLen)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fetch streams a content to memory and waits for the verdict.
func fetch(ctx context.Context, c api.Content, err error) ([]byte, error) {
	return testnet.Fetch(ctx, c, err)
}

func export(t *testing.T, nd *testnet.Node, id protocol.TaskID) []byte {
	t.Helper()
	ctx := testCtx(t)
	c, err := nd.Export(ctx, id, storage.KindContent)
	got, err := fetch(ctx, c, err)
	if err != nil {
		t.Fatalf("%s: export %s: %v", nd.Name, id.Short(), err)
	}
	return got
}

func TestImportOnOneNodeExportOnAnother(t *testing.T) {
	c := startCluster(t, 3, debugLog())
	data := payload(5<<20+123, 1)
	id := importBytes(t, c.Node(0), data)

	st, err := c.Node(2).Stat(testCtx(t), id, false)
	if err != nil {
		t.Fatalf("remote stat: %v", err)
	}
	if st.Local || st.Task.ContentLength != int64(len(data)) || !st.Task.Complete || st.Providers < 1 {
		t.Fatalf("remote stat = %+v", st)
	}
	if _, err := c.Node(2).Stat(testCtx(t), id, true); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("local-only stat on a node without it: %v", err)
	}
	if got := export(t, c.Node(2), id); !bytes.Equal(got, data) {
		t.Fatal("exported bytes differ from the imported ones")
	}
	info, err := c.Node(2).Store().Stat(testCtx(t), id)
	if err != nil || !info.Complete {
		t.Fatalf("exporter's copy: %+v %v", info, err)
	}
	// Now node 1 can use both as parents.
	if got := export(t, c.Node(1), id); !bytes.Equal(got, data) {
		t.Fatal("second export differs")
	}
}

func TestExportOfUnknownTaskFailsNotFound(t *testing.T) {
	c := startCluster(t, 2, shortFind())
	id := protocol.ContentTaskID(protocol.SHA256([]byte("nobody has this")))
	ctx := testCtx(t)
	c2, err := c.Node(1).Export(ctx, id, storage.KindContent)
	if _, err := fetch(ctx, c2, err); !errors.Is(err, download.ErrNoSource) {
		t.Fatalf("err = %v, want ErrNoSource", err)
	}
}

func TestURLDownloadFetchesOriginAboutOnce(t *testing.T) {
	origin, err := testnet.NewOrigin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { origin.Close() })
	data := payload(16<<20, 2)
	origin.Put("/file.bin", data, `"v1"`)

	const n = 5
	c := startCluster(t, n, debugLog())
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			cont, err := c.Node(i).Download(ctx, api.DownloadRequest{URL: origin.URL("/file.bin"), PieceLength: pieceLen})
			got, err := fetch(ctx, cont, err)
			if err == nil && !bytes.Equal(got, data) {
				err = errors.New("bytes differ")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	ratio := float64(origin.BytesServed()) / float64(len(data))
	t.Logf("origin bytes / file size = %.3f (%d requests)", ratio, origin.Requests())
	if ratio > 1.5 {
		t.Fatalf("origin served %.2f× the file to %d simultaneous downloads", ratio, n)
	}
}

func TestLyingParentIsDroppedAndDownloadCompletes(t *testing.T) {
	c := startCluster(t, 3, testnet.WithNodeOptions(func(i int) []node.Option {
		if i == 0 {
			return []node.Option{node.WithUploadStore(testnet.Corrupt)}
		}
		return nil
	}))
	data := payload(4<<20, 3)
	// Both 0 (a liar) and 1 (honest) hold the content.
	id := importBytes(t, c.Node(0), data)
	importBytes(t, c.Node(1), data)
	if got := export(t, c.Node(2), id); !bytes.Equal(got, data) {
		t.Fatal("exported bytes differ")
	}
	if !c.Node(2).Downloader().IsBad(c.Node(0).Host().ID()) {
		t.Fatal("the lying parent was not shunned")
	}
}

func TestStallingParentIsAvoided(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c := startCluster(t, 3,
		testnet.WithNodeOptions(func(i int) []node.Option {
			opts := []node.Option{node.WithDownloadConfig(func(cfg *download.Config) { cfg.PieceIdleTimeout = 5 * time.Second })}
			if i == 0 {
				opts = append(opts, node.WithUploadStore(testnet.Stall(release)))
			}
			return opts
		}))
	data := payload(2<<20, 4)
	id := importBytes(t, c.Node(0), data)
	importBytes(t, c.Node(1), data)
	start := time.Now()
	if got := export(t, c.Node(2), id); !bytes.Equal(got, data) {
		t.Fatal("exported bytes differ")
	}
	t.Logf("completed in %v despite a stalling parent", time.Since(start))
}

func TestParentKilledMidTransfer(t *testing.T) {
	c := startCluster(t, 3, testnet.WithConfig(func(i int, cfg *node.Config) {
		if i == 0 || i == 1 {
			cfg.Limits.UploadRate = 4 << 20 // slow enough to kill mid-way
		}
	}))
	data := payload(8<<20, 5)
	id := importBytes(t, c.Node(0), data)
	importBytes(t, c.Node(1), data)
	ctx := testCtx(t)
	cont, err := c.Node(2).Export(ctx, id, storage.KindContent)
	if err != nil {
		t.Fatal(err)
	}
	<-cont.Ready()
	task := cont.(*download.Job).Task()
	if err := testnet.WaitFor(ctx, 10*time.Millisecond, func() bool { return task.Info().VerifiedPieces >= 4 }); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(0).Stop(); err != nil {
		t.Fatal(err)
	}
	got, err := fetch(ctx, cont, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after killing a parent: %v (equal=%v)", err, bytes.Equal(got, data))
	}
}

func TestDeleteWithdrawsFromCluster(t *testing.T) {
	c := startCluster(t, 3, shortFind())
	data := payload(1<<20, 6)
	id := importBytes(t, c.Node(0), data)
	ctx := testCtx(t)
	if _, err := c.Node(2).Stat(ctx, id, false); err != nil {
		t.Fatalf("stat before delete: %v", err)
	}
	if err := c.Node(0).Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Once the withdrawal reached node 2, the task is nowhere.
	if err := testnet.WaitFor(ctx, 50*time.Millisecond, func() bool {
		_, err := c.Node(2).Stat(ctx, id, false)
		return errors.Is(err, storage.ErrNotFound)
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(0).Delete(ctx, id); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestWrongSecretNodeGetsNothing(t *testing.T) {
	c := startCluster(t, 2)
	data := payload(1<<20, 7)
	id := importBytes(t, c.Node(0), data)
	// A node of another cluster bootstrapping from node 0.
	other, err := testnet.Start(testCtx(t), t.TempDir(), 1, testnet.WithConfig(func(_ int, cfg *node.Config) {
		cfg.Bootstrap = testnet.FullAddrs(c.Node(0).AddrInfo())
	}), testnet.WithNodeOptions(func(int) []node.Option {
		return []node.Option{node.WithDownloadConfig(func(cfg *download.Config) { cfg.FindTimeout = 2 * time.Second })}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	ctx := testCtx(t)
	cont, err := other.Node(0).Export(ctx, id, storage.KindContent)
	if _, err := fetch(ctx, cont, err); err == nil {
		t.Fatal("a node with the wrong secret downloaded the task")
	}
	if other.Node(0).Admission().IsMember(c.Node(0).Host().ID()) {
		t.Fatal("nodes of different clusters admitted each other")
	}
}
