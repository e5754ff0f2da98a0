package mirror_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/node/mirror"
	"github.com/dragonfly-p2p/df/testnet"
	"github.com/dragonfly-p2p/df/testnet/shape"
)

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// upstreamRegistry is go-containerregistry's in-memory registry behind a
// wrapper that counts requests and blob bytes and lets a test hook
// requests, on a real loopback listener.
type upstreamRegistry struct {
	Host     string
	srv      *http.Server
	inner    http.Handler
	hook     atomic.Pointer[func(http.ResponseWriter, *http.Request) bool]
	requests atomic.Int64

	mu        sync.Mutex
	blobGets  map[string]int
	blobBytes map[string]int64
	paths     []string
}

func newUpstreamRegistry(t testing.TB) *upstreamRegistry {
	t.Helper()
	return newUpstreamRegistryOn(t, nil)
}

// newUpstreamRegistryOn is newUpstreamRegistry behind a shaped link (nil:
// not shaped).
func newUpstreamRegistryOn(t testing.TB, link *shape.Link) *upstreamRegistry {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if link != nil {
		ln = link.Listener(ln)
	}
	u := &upstreamRegistry{
		Host:     ln.Addr().String(),
		inner:    ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))),
		blobGets: make(map[string]int), blobBytes: make(map[string]int64),
	}
	u.srv = &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = u.srv.Serve(ln) }()
	t.Cleanup(func() { _ = u.srv.Close() })
	return u
}

func (u *upstreamRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.requests.Add(1)
	u.mu.Lock()
	u.paths = append(u.paths, r.Method+" "+r.URL.Path+" "+r.UserAgent())
	u.mu.Unlock()
	if h := u.hook.Load(); h != nil && (*h)(w, r) {
		return
	}
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
		d := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		u.mu.Lock()
		u.blobGets[d]++
		u.mu.Unlock()
		w = &countingWriter{ResponseWriter: w, add: func(n int) {
			u.mu.Lock()
			u.blobBytes[d] += int64(n)
			u.mu.Unlock()
		}}
	}
	u.inner.ServeHTTP(w, r)
}

// setHook installs f (nil removes it); f returns true when it answered.
func (u *upstreamRegistry) setHook(f func(http.ResponseWriter, *http.Request) bool) {
	if f == nil {
		u.hook.Store(nil)
		return
	}
	u.hook.Store(&f)
}

func (u *upstreamRegistry) push(t testing.TB, ref string, img v1.Image) {
	t.Helper()
	hook := u.hook.Swap(nil)
	defer u.hook.Store(hook)
	if err := crane.Push(img, u.Host+"/"+ref, crane.Insecure); err != nil {
		t.Fatal(err)
	}
	u.resetCounts()
}

func (u *upstreamRegistry) pushIndex(t *testing.T, ref string, idx v1.ImageIndex) {
	t.Helper()
	hook := u.hook.Swap(nil)
	defer u.hook.Store(hook)
	tag, err := name.ParseReference(u.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	u.resetCounts()
}

func (u *upstreamRegistry) resetCounts() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.blobGets = make(map[string]int)
	u.blobBytes = make(map[string]int64)
	u.paths = nil
	u.requests.Store(0)
}

func (u *upstreamRegistry) blobStats(d string) (gets int, bytes int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.blobGets[d], u.blobBytes[d]
}

func (u *upstreamRegistry) totalBlobBytes() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	var n int64
	for _, b := range u.blobBytes {
		n += b
	}
	return n
}

func (u *upstreamRegistry) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.paths...)
}

type countingWriter struct {
	http.ResponseWriter
	add func(int)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.add(n)
	return n, err
}

// testImage generates and pushes a random multi-layer image.
func testImage(t testing.TB, u *upstreamRegistry, ref string, layerSize int64, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, layers)
	if err != nil {
		t.Fatal(err)
	}
	u.push(t, ref, img)
	return img
}

// startNodes starts an in-process cluster of n connected nodes.
func startNodes(t testing.TB, n int, opts ...testnet.Option) *testnet.Cluster {
	t.Helper()
	ctx := testCtx(t)
	opts = append([]testnet.Option{testnet.WithNodeOptions(func(int) []node.Option {
		return []node.Option{node.WithDownloadConfig(func(c *download.Config) {
			c.FindTimeout = 2 * time.Second
			c.GatherWindow = 200 * time.Millisecond
		})}
	})}, opts...)
	c, err := testnet.Start(ctx, t.TempDir(), n, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if n > 1 {
		if err := c.WaitConnected(ctx, n-1); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// mirrorServer is a mirror served on a loopback listener.
type mirrorServer struct {
	M    *mirror.Mirror
	Host string // 127.0.0.1:port
	URL  string // http://127.0.0.1:port
	Reg  *prometheus.Registry
	Logs *syncBuffer
}

// testConfig mirrors u as the default registry, its library/* public.
func testConfig(u *upstreamRegistry) mirror.Config {
	return mirror.Config{
		DefaultRegistry: u.Host,
		Registries: []mirror.Registry{{
			Name: u.Host, Scheme: "http", PublicRepositories: []string{"library/*"},
		}},
		UpstreamTimeout: 5 * time.Second,
		ReadyTimeout:    20 * time.Second,
	}
}

func startMirror(t testing.TB, dl *download.Downloader, cfg mirror.Config) *mirrorServer {
	t.Helper()
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	m, err := mirror.New(mirror.FromDownloader(dl), cfg,
		mirror.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		mirror.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mirror serve: %v", err)
		}
	})
	return &mirrorServer{M: m, Host: ln.Addr().String(), URL: "http://" + ln.Addr().String(), Reg: reg, Logs: logs}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// do sends a request to the mirror and reads the whole response.
func do(t *testing.T, method, url string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, body
}

// ociCode returns the first error code of an OCI error body.
func ociCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an OCI error body: %q", body)
	}
	return e.Errors[0].Code
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}
