package manager_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/testnet"
)

// BenchmarkPreheatImage times, in the same iteration, a preheat job of a
// 4 × 64 MiB image (go-containerregistry's in-memory registry on loopback)
// carried out by a seed peer — manifest resolution, the libp2p request, the
// seed's download through its conductor into its store, digest checks —
// against fetching the same blobs straight from the registry with one HTTP
// client, 4 at a time like the preheat job (each hashed and written to a
// file with fsync, as a pull keeps them; one at a time is reported too). It
// reports preheat/direct: the target is ≤ 1.2.
func BenchmarkPreheatImage(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	reg, err := testnet.NewRegistry("library/bench:v1", 64<<20, 4)
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	// The seed peer follows the manager and has a scheduler (which sends
	// the first peer of a task straight to the origin).
	c, m := seedCluster(b, ctx, 1, testnet.WithSchedulers(1))
	image := reg.Host() + "/" + reg.Ref()

	// The blob list, as the manager resolves it (first job), for the direct fetch.
	j, err := m.SubmitJob(ctx, "preheat", map[string]any{"image": image}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if j, err = m.WaitJob(ctx, j.ID, nil); err != nil || j.State != "succeeded" {
		b.Fatalf("warm-up preheat: %+v %v", j, err)
	}
	type blob struct {
		url    string
		digest protocol.Digest
	}
	var blobs []blob
	var total int64
	for _, p := range j.Progress {
		d, err := protocol.ParseDigest(p.Digest)
		if err != nil {
			b.Fatal(err)
		}
		blobs = append(blobs, blob{p.URL, d})
		total += p.Size
	}
	seed := c.Node(0)
	forget := func() {
		for _, bl := range blobs {
			// Through the node: the scheduler forgets the copy too.
			if err := seed.Delete(ctx, protocol.ContentTaskID(bl.digest)); err != nil {
				b.Fatal(err)
			}
		}
	}
	dir := b.TempDir()
	fetch := func(i int) error {
		bl := blobs[i]
		resp, err := http.Get(bl.url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", bl.url, resp.Status)
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(h, f), resp.Body); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != bl.digest.Hex() {
			return fmt.Errorf("blob %s: got sha256 %s", bl.digest, got)
		}
		return nil
	}
	// direct fetches the blobs concurrently at most par at a time (the
	// preheat job runs 4 blobs at once; a pull does too).
	direct := func(par int) {
		var g errgroup.Group
		g.SetLimit(par)
		for i := range blobs {
			g.Go(func() error { return fetch(i) })
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	var tDirect, tSeq, tPreheat time.Duration
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		forget()
		b.StartTimer()
		start := time.Now()
		direct(4)
		tDirect += time.Since(start)
		start = time.Now()
		direct(1)
		tSeq += time.Since(start)

		start = time.Now()
		j, err := m.SubmitJob(ctx, "preheat", map[string]any{"image": image}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if j, err = m.WaitJob(ctx, j.ID, nil); err != nil || j.State != "succeeded" {
			b.Fatalf("preheat: %+v %v", j, err)
		}
		tPreheat += time.Since(start)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(tDirect.Seconds()/n, "direct-s")
	b.ReportMetric(tSeq.Seconds()/n, "direct-seq-s")
	b.ReportMetric(tPreheat.Seconds()/n, "preheat-s")
	b.ReportMetric(tPreheat.Seconds()/tDirect.Seconds(), "preheat/direct")
	b.Logf("%d blobs, %d bytes: direct %.2fs (one at a time %.2fs), preheat %.2fs per run", len(blobs), total,
		tDirect.Seconds()/n, tSeq.Seconds()/n, tPreheat.Seconds()/n)
}
