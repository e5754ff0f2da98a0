package testnet

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dragonfly-p2p/df/testnet/shape"
)

// Origin is a real HTTP server on loopback serving fixed files with Range,
// ETag and Last-Modified support, counting the bytes it sends.
type Origin struct {
	srv      *http.Server
	ln       net.Listener
	mu       sync.Mutex
	files    map[string]originFile
	bytes    atomic.Int64
	requests atomic.Int64
	// Hook, when set, may handle a request itself (fault injection): it
	// returns true when it wrote a response.
	Hook func(w http.ResponseWriter, r *http.Request) bool
}

type originFile struct {
	data    []byte
	etag    string
	modTime time.Time
}

// NewOrigin starts an origin on 127.0.0.1.
func NewOrigin() (*Origin, error) { return NewShapedOrigin(nil) }

// NewShapedOrigin starts an origin whose link is shaped by link (nil: not shaped).
func NewShapedOrigin(link *shape.Link) (*Origin, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if link != nil {
		ln = link.Listener(ln)
	}
	return NewOriginOn(ln), nil
}

// NewOriginOn starts an origin serving on ln (e.g. a listener inside a
// network namespace).
func NewOriginOn(ln net.Listener) *Origin {
	o := &Origin{ln: ln, files: make(map[string]originFile)}
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	go o.srv.Serve(ln)
	return o
}

// Put serves data at path; etag may be empty.
func (o *Origin) Put(path string, data []byte, etag string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.files[path] = originFile{data: data, etag: etag, modTime: time.Now().Truncate(time.Second)}
}

// URL returns the full URL of path.
func (o *Origin) URL(path string) string { return fmt.Sprintf("http://%s%s", o.ln.Addr(), path) }

// BytesServed is the body bytes sent so far.
func (o *Origin) BytesServed() int64 { return o.bytes.Load() }

// Requests is the number of requests answered so far.
func (o *Origin) Requests() int64 { return o.requests.Load() }

// Close stops the server.
func (o *Origin) Close() error { return o.srv.Close() }

func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	if o.Hook != nil && o.Hook(w, r) {
		return
	}
	o.mu.Lock()
	f, ok := o.files[r.URL.Path]
	o.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if f.etag != "" {
		w.Header().Set("ETag", f.etag)
	}
	http.ServeContent(&countingWriter{ResponseWriter: w, n: &o.bytes}, r, "", f.modTime, bytes.NewReader(f.data))
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}
