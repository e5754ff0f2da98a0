package source

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// newClient returns a client allowed to reach loopback test servers, with
// fast retries.
func newClient(t *testing.T, opts ...Option) *Client {
	t.Helper()
	base := []Option{WithAllowedNetworks(loopback), WithRetry(3, time.Millisecond, 5*time.Millisecond)}
	c, err := New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// origin is a real HTTP(S) test server that counts TCP connections and
// requests and records request headers by path.
type origin struct {
	*httptest.Server
	accepts atomic.Int64
	hits    atomic.Int64

	mu      sync.Mutex
	headers map[string]http.Header // last request headers per path
	times   []time.Time
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func startOrigin(t *testing.T, h http.Handler) *origin    { return start(t, h, false) }
func startTLSOrigin(t *testing.T, h http.Handler) *origin { return start(t, h, true) }

func start(t *testing.T, h http.Handler, useTLS bool) *origin {
	t.Helper()
	o := &origin{headers: map[string]http.Header{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		o.mu.Lock()
		o.headers[r.URL.Path] = r.Header.Clone()
		o.times = append(o.times, time.Now())
		o.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Listener = countingListener{Listener: srv.Listener, n: &o.accepts}
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	o.Server = srv
	t.Cleanup(srv.Close)
	return o
}

// header returns the headers of the last request to path (nil if none).
func (o *origin) header(path string) http.Header {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.headers[path]
}

func (o *origin) port() string {
	_, p, _ := net.SplitHostPort(o.Listener.Addr().String())
	return p
}

var (
	testData = func() []byte {
		b := make([]byte, 64<<10)
		r := rand.New(rand.NewPCG(7, 9))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}()
	testMod = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
)

// serveContent serves data with full HTTP semantics (ranges, If-Range,
// conditionals) as net/http implements them.
func serveContent(data []byte, etag string, mod time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if etag != "" {
			w.Header().Set("ETag", etag)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", mod, bytes.NewReader(data))
	}
}

// flush forces the response out, so that net/http uses chunked encoding
// instead of computing a Content-Length.
func flush(w http.ResponseWriter) { w.(http.Flusher).Flush() }

// blockUntil waits until the request ends or release is closed.
func blockUntil(r *http.Request, release <-chan struct{}) {
	select {
	case <-r.Context().Done():
	case <-release:
	}
}

// releaseOnCleanup returns a channel closed before the servers close.
func releaseOnCleanup(t *testing.T) chan struct{} {
	ch := make(chan struct{})
	t.Cleanup(func() { close(ch) })
	return ch
}

// logBuffer is a slog handler target that keeps every record as text.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (b *logBuffer) count(msg string) int { return strings.Count(b.String(), msg) }

func readAll(t *testing.T, rc io.ReadCloser) ([]byte, error) {
	t.Helper()
	defer rc.Close()
	return io.ReadAll(rc)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
