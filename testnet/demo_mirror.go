package testnet

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/dragonfly-p2p/df/protocol/units"
)

// demoRegistry is go-containerregistry's in-memory registry on loopback,
// counting the blob bytes it sends, with an image the demo pulls through
// the nodes' mirrors.
type demoRegistry struct {
	srv        *httptest.Server
	host       string
	blobBytes  atomic.Int64
	imageBytes int64
	layers     int64
	ref        string
}

// newDemoRegistry starts the registry and pushes a random image of layers
// layers of layerSize bytes as library/demo:v1.
func newDemoRegistry(layerSize, layers int64) (*demoRegistry, error) {
	r := &demoRegistry{ref: "library/demo:v1", layers: layers}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			w = &countingResponseWriter{ResponseWriter: w, n: &r.blobBytes}
		}
		inner.ServeHTTP(w, req)
	}))
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	img, err := random.Image(layerSize, layers)
	if err != nil {
		r.Close()
		return nil, err
	}
	if err := crane.Push(img, r.host+"/"+r.ref, crane.Insecure); err != nil {
		r.Close()
		return nil, fmt.Errorf("push the demo image: %w", err)
	}
	ls, err := img.Layers()
	if err != nil {
		r.Close()
		return nil, err
	}
	for _, l := range ls {
		n, err := l.Size()
		if err != nil {
			r.Close()
			return nil, err
		}
		r.imageBytes += n
	}
	r.blobBytes.Store(0)
	return r, nil
}

// Close stops the registry.
func (r *demoRegistry) Close() { r.srv.Close() }

type countingResponseWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingResponseWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// freeLoopbackAddr returns a 127.0.0.1 address with a free TCP port.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// pullThroughMirrors pulls the image through every mirror at once with
// go-containerregistry's client (reading every layer, which checks its
// digest) and reports registry bytes against bytes that came from peers.
func (r *demoRegistry) pullThroughMirrors(ctx context.Context, say func(string, ...any), names, mirrors []string) error {
	say("\n▶ crane pull %s through the registry mirror of all %d nodes at once (%d layers, %s)", r.ref, len(mirrors), r.layers, units.ByteSize(r.imageBytes))
	before := r.blobBytes.Load()
	secs := make([]float64, len(mirrors))
	errs := make([]error, len(mirrors))
	var wg sync.WaitGroup
	for i, m := range mirrors {
		wg.Go(func() {
			start := time.Now()
			img, err := crane.Pull(m+"/"+r.ref, crane.Insecure, crane.WithContext(ctx))
			if err != nil {
				errs[i] = err
				return
			}
			ls, err := img.Layers()
			if err != nil {
				errs[i] = err
				return
			}
			for _, l := range ls {
				rc, err := l.Compressed()
				if err == nil {
					_, err = io.Copy(io.Discard, rc) // verifies the digest at EOF
					rc.Close()
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
			secs[i] = time.Since(start).Seconds()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("pull through %s's mirror (%s): %w", names[i], mirrors[i], err)
		}
		say("  %s  mirror %s  %s in %.2fs, digests verified ✔", names[i], mirrors[i], units.ByteSize(r.imageBytes), secs[i])
	}
	served := r.blobBytes.Load() - before
	total := int64(len(mirrors)) * r.imageBytes
	say("  registry sent %s of layers for %d pulls (%.2f × the image; without P2P: %d ×); %s came from peers",
		units.ByteSize(served), len(mirrors), float64(served)/float64(r.imageBytes), len(mirrors), units.ByteSize(max(total-served, 0)))
	return nil
}
