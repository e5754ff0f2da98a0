package node_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/testnet"
)

func newOrigin(t *testing.T) *testnet.Origin {
	t.Helper()
	o, err := testnet.NewOrigin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func downloadURL(ctx context.Context, nd *testnet.Node, url string) ([]byte, download.Stats, error) {
	c, err := nd.Download(ctx, api.DownloadRequest{URL: url, PieceLength: pieceLen})
	if err != nil {
		return nil, download.Stats{}, err
	}
	got, err := fetch(ctx, c, nil)
	return got, c.Stats(), err
}

// F19: a node restarted mid-download resumes from its stored pieces and
// fetches only the rest from the origin.
func TestResumeAfterRestart(t *testing.T) {
	origin := newOrigin(t)
	data := payload(8<<20, 20)
	origin.Put("/big.bin", data, `"r1"`)
	c := startCluster(t, 2, testnet.WithConfig(func(i int, cfg *node.Config) {
		if i == 1 {
			cfg.Limits.DownloadRate = 4 << 20 // two seconds for the whole file
		}
	}))
	ctx := testCtx(t)
	cont, err := c.Node(1).Download(ctx, api.DownloadRequest{URL: origin.URL("/big.bin"), PieceLength: pieceLen})
	if err != nil {
		t.Fatal(err)
	}
	<-cont.Ready()
	task := cont.(*download.Job).Task()
	total := task.Info().Layout.PieceCount()
	if err := testnet.WaitFor(ctx, 10*time.Millisecond, func() bool { return task.Info().VerifiedPieces >= total/2 }); err != nil {
		t.Fatal(err)
	}
	cont.Release()
	nd, err := c.Restart(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	info, err := nd.Store().Stat(ctx, task.Info().ID)
	if err != nil {
		t.Fatal(err)
	}
	kept := info.VerifiedPieces
	if kept == 0 {
		t.Fatal("no piece survived the restart")
	}
	before := origin.BytesServed()
	got, st, err := downloadURL(ctx, nd, origin.URL("/big.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("resumed download: %v (equal=%v)", err, bytes.Equal(got, data))
	}
	remaining := int64(total-kept) * pieceLen
	if fetched := origin.BytesServed() - before; fetched > remaining+pieceLen || st.BytesFromSource > remaining+pieceLen {
		t.Fatalf("after keeping %d/%d pieces the origin served %d bytes, %d remained", kept, total, fetched, remaining)
	}
}

// A cached URL task is revalidated: when the origin's content changes, the
// new content is downloaded, and peers holding the old copy are ignored.
func TestRevalidationAndStaleParents(t *testing.T) {
	origin := newOrigin(t)
	v1, v2 := payload(2<<20, 21), payload(2<<20, 22)
	origin.Put("/f", v1, `"v1"`)
	c := startCluster(t, 3)
	ctx := testCtx(t)
	for i := range 2 {
		if got, _, err := downloadURL(ctx, c.Node(i), origin.URL("/f")); err != nil || !bytes.Equal(got, v1) {
			t.Fatalf("node %d v1: %v", i, err)
		}
	}
	origin.Put("/f", v2, `"v2"`)
	// Node 2 never had it: nodes 0 and 1 hold a stale copy it must ignore.
	if got, _, err := downloadURL(ctx, c.Node(2), origin.URL("/f")); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("node 2 got the stale copy (err %v)", err)
	}
	// Node 0 had v1 cached: revalidation brings v2.
	if got, _, err := downloadURL(ctx, c.Node(0), origin.URL("/f")); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("node 0 served its stale cache (err %v)", err)
	}
	// Unchanged origin: served from the cache, no body fetched again.
	before := origin.BytesServed()
	if got, _, err := downloadURL(ctx, c.Node(0), origin.URL("/f")); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("cached v2: %v", err)
	}
	if origin.BytesServed()-before > 1 { // a one-byte conditional GET at most
		t.Fatalf("revalidating an unchanged file fetched %d bytes", origin.BytesServed()-before)
	}
}

// F11 / C-row: disk full during import fails cleanly and leaves nothing.
func TestDiskFullDuringImport(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	cfg := node.DefaultConfig()
	cfg.DataDir = dir + "/node"
	cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	nd, err := node.New(cfg, node.WithSecret([]byte("0123456789abcdef0123")), node.WithoutAPISocket())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- nd.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	big := payload(16<<20, 23)
	_, err = nd.Import(ctx, api.ImportRequest{Kind: storage.KindContent, Size: int64(len(big))}, bytes.NewReader(big))
	if err == nil || !(errors.Is(err, syscall.ENOSPC) || errors.Is(err, storage.ErrNoSpace)) {
		t.Fatalf("import on a full disk: %v", err)
	}
	if tasks, err := nd.List(ctx); err != nil || len(tasks) != 0 {
		t.Fatalf("after a failed import the store lists %d tasks (%v)", len(tasks), err)
	}
	small := payload(64<<10, 24)
	if _, err := nd.Import(ctx, api.ImportRequest{Kind: storage.KindContent, Size: int64(len(small))}, bytes.NewReader(small)); err != nil {
		t.Fatalf("a small import after the failure: %v", err)
	}
}

// A node alone fetches its pieces from the origin as one streamed range,
// not a request per piece: no round trip between pieces, and each piece
// completes as soon as its bytes are in (peers can start on it).
func TestOriginPiecesStreamInOneRange(t *testing.T) {
	origin := newOrigin(t)
	data := payload(4<<20, 21) // 16 pieces
	origin.Put("/run.bin", data, `"r1"`)
	c := startCluster(t, 1)
	got, st, err := downloadURL(testCtx(t), c.Node(0), origin.URL("/run.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %v (equal=%v)", err, bytes.Equal(got, data))
	}
	if st.BytesFromSource != int64(len(data)) || origin.BytesServed() != int64(len(data)) {
		t.Fatalf("origin sent %d bytes, the node counted %d, for %d", origin.BytesServed(), st.BytesFromSource, len(data))
	}
	// A HEAD for the size and validator, then one GET for the 16 pieces.
	if n := origin.Requests(); n > 2 {
		t.Fatalf("%d origin requests for 16 pieces, want a HEAD and one range", n)
	}
}

// A seed trigger for a task the seed is already downloading (a pull
// through the seed's own mirror, say) lets that download go to the
// origin: it joined it before, without the origin, and every node waited
// for the mirror's upstream timeout.
func TestSeedTriggerJoinsARunningDownload(t *testing.T) {
	origin := newOrigin(t)
	data := payload(2<<20, 22)
	origin.Put("/seed.bin", data, `"s1"`)
	c := startCluster(t, 1, testnet.WithSchedulers(1), testnet.WithConfig(func(_ int, cfg *node.Config) { cfg.Seed = true }))
	ctx := testCtx(t)
	// LEVEL2 (P2P only): the scheduler never sends this download to the
	// origin; only the trigger can.
	req := api.DownloadRequest{URL: origin.URL("/seed.bin"), PieceLength: pieceLen, Priority: 2}
	r, err := node.DownloadRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	cont, err := c.Node(0).Download(ctx, req)
	c.Node(0).TriggerSeed(r)
	got, err := testnet.Fetch(ctx, cont, err)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %v (equal=%v)", err, bytes.Equal(got, data))
	}
	if n := origin.BytesServed(); n != int64(len(data)) {
		t.Fatalf("origin served %d bytes for %d", n, len(data))
	}
}
