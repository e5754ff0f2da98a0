package mirror_test

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestNodesPullingTogetherFetchEachBlobOnce: several nodes pull the same
// image through their own mirrors at once (crane, as a runtime would); the
// registry serves each blob about once, the rest travels between peers.
func TestNodesPullingTogetherFetchEachBlobOnce(t *testing.T) {
	const nodes = 8
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "library/app:v1", 6<<20, 3)
	c := startNodes(t, nodes)
	cfg := testConfig(reg)
	mirrors := make([]*mirrorServer, nodes)
	for i := range nodes {
		mirrors[i] = startMirror(t, c.Node(i).Downloader(), cfg)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() {
			pulled, err := crane.Pull(mirrors[i].Host+"/library/app:v1", crane.Insecure)
			if err != nil {
				errs[i] = err
				return
			}
			layers, err := pulled.Layers()
			if err != nil {
				errs[i] = err
				return
			}
			for _, l := range layers {
				if err := readLayer(l); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	layers, _ := img.Layers()
	var imageBytes int64
	for _, l := range layers {
		size, _ := l.Size()
		d, _ := l.Digest()
		imageBytes += size
		gets, sent := reg.blobStats(d.String())
		t.Logf("layer %s: %d bytes, registry sent %d bytes (%.2f×) in %d GETs", d.String()[:19], size, sent, float64(sent)/float64(size), gets)
		if float64(sent) > 1.5*float64(size) {
			t.Errorf("layer %s: the registry sent %.2f× its size to %d nodes", d, float64(sent)/float64(size), nodes)
		}
	}
	ratio := float64(reg.totalBlobBytes()) / float64(imageBytes)
	t.Logf("%d nodes pulled a %d-byte image in %v; registry blob bytes = %.2f× the image", nodes, imageBytes, took.Round(time.Millisecond), ratio)
	if ratio > 1.3 {
		t.Fatalf("registry blob bytes %.2f× the image size", ratio)
	}
}

// readLayer reads a layer (go-containerregistry verifies its digest).
func readLayer(l v1.Layer) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		rc.Close()
		return err
	}
	return rc.Close()
}
