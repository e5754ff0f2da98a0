package testnet

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// Registry is go-containerregistry's in-memory OCI registry on loopback,
// holding one random image and counting the blob bytes it sends (what the
// mirror tests and the demo compare with the image's size).
type Registry struct {
	srv        *httptest.Server
	host       string
	ref        string
	layers     int64
	imageBytes int64
	blobBytes  atomic.Int64
}

// NewRegistry starts a registry and pushes a random image of layers layers
// of layerSize bytes as ref (e.g. "library/app:v1").
func NewRegistry(ref string, layerSize, layers int64) (*Registry, error) {
	r := &Registry{ref: ref, layers: layers}
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
	if err := crane.Push(img, r.host+"/"+ref, crane.Insecure); err != nil {
		r.Close()
		return nil, fmt.Errorf("push %s: %w", ref, err)
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

// Host is the registry's host:port (its name for mirrors and image references).
func (r *Registry) Host() string { return r.host }

// URL is http://host:port.
func (r *Registry) URL() string { return r.srv.URL }

// Ref is the pushed image's repository:tag.
func (r *Registry) Ref() string { return r.ref }

// Layers is the image's layer count.
func (r *Registry) Layers() int64 { return r.layers }

// ImageBytes is the sum of the image's layer sizes.
func (r *Registry) ImageBytes() int64 { return r.imageBytes }

// BlobBytes is the blob body bytes sent since the push.
func (r *Registry) BlobBytes() int64 { return r.blobBytes.Load() }

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

type countingResponseWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingResponseWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// PullConcurrency is how many layers PullImage fetches at once: the default
// of containerd (max_concurrent_downloads) and of Docker.
const PullConcurrency = 3

// PullImage pulls ref through the registry (or mirror) at host with
// go-containerregistry's client and reads every layer, which checks its
// digest; opts are crane's (a transport, say).
func PullImage(ctx context.Context, host, ref string, opts ...crane.Option) error {
	img, err := crane.Pull(host+"/"+ref, append([]crane.Option{crane.Insecure, crane.WithContext(ctx)}, opts...)...)
	if err != nil {
		return err
	}
	return ReadLayers(img)
}

// ReadLayers reads every layer of img, PullConcurrency at a time as
// runtimes do, checking each digest.
func ReadLayers(img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(PullConcurrency)
	for _, l := range ls {
		g.Go(func() error {
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc) // verifies the digest at EOF
			return err
		})
	}
	return g.Wait()
}
