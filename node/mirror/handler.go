package mirror

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// request is one validated mirror request.
type request struct {
	r    *http.Request
	rt   route
	reg  *registry
	cred credential
	head bool
}

// serveHTTP answers one request. An error before the response started
// becomes an OCI error response; after it started (a blob download that
// failed mid-body, or a client that left) the connection is aborted, so the
// client sees a broken transfer rather than a short body ending cleanly.
func (m *Mirror) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var rw *responseWriter
	rw = newResponseWriter(w, m.cfg.WriteStallTimeout, func() {
		m.metrics.headers(rw.ep, time.Since(start))
	})
	q, err := m.handle(rw, r)
	head := r.Method == http.MethodHead
	abort := err != nil && rw.wroteHeader // the response had started
	if err != nil && !abort {
		toOCI(err, q.rt.endpoint).write(rw, head)
	}
	m.metrics.request(q.rt.endpoint, methodLabel(r.Method), rw.status)
	m.logRequest(q, r, rw, err, abort, time.Since(start))
	if abort {
		m.metrics.aborted.Inc()
		// net/http's documented way to abort a response: the connection
		// is closed and the client gets an error, not a clean short body.
		panic(http.ErrAbortHandler)
	}
}

// handle routes and validates the request, then serves it.
func (m *Mirror) handle(w *responseWriter, r *http.Request) (*request, error) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	q := &request{r: r, head: r.Method == http.MethodHead}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return q, ErrMethod
	}
	rt, err := parseRoute(r.URL.EscapedPath(), r.URL.Path)
	q.rt, w.ep = rt, rt.endpoint
	if err != nil {
		return q, err
	}
	if rt.endpoint == endpointBase {
		serveBase(w, q.head)
		return q, nil
	}
	select {
	case m.sem <- struct{}{}:
		defer func() { <-m.sem }()
	default:
		return q, errOverloaded
	}
	if q.reg, err = m.registryFor(r); err != nil {
		return q, err
	}
	if q.cred, err = m.up.keys.parse(r.Header); err != nil {
		return q, err
	}
	ctx := r.Context()
	if rt.endpoint == endpointManifest {
		return q, m.serveManifest(ctx, w, q)
	}
	return q, m.serveBlob(ctx, w, q)
}

// errOverloaded: too many requests in flight.
var errOverloaded error = &upstreamError{kind: ErrTooManyRequests, msg: "the mirror has too many requests in flight"}

// serveBase answers the API version check: the mirror speaks registry/2.0
// and needs no credentials of its own.
func serveBase(w http.ResponseWriter, head bool) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if !head {
		_, _ = w.Write([]byte("{}"))
	}
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead:
		return m
	}
	return "other"
}

// logRequest logs one request without headers: method, endpoint, registry,
// repository, reference, status, bytes, duration.
func (m *Mirror) logRequest(q *request, r *http.Request, rw *responseWriter, err error, aborted bool, took time.Duration) {
	level := slog.LevelDebug
	if rw.status >= 500 || aborted {
		level = slog.LevelWarn
	}
	if !m.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", methodLabel(r.Method)),
		slog.String("endpoint", q.rt.endpoint.String()),
		slog.Int("status", rw.status),
		slog.Int64("bytes", rw.written),
		slog.Duration("took", took),
	}
	if q.reg != nil {
		attrs = append(attrs, slog.String("registry", q.reg.cfg.Name))
	}
	if q.rt.name != "" {
		attrs = append(attrs, slog.String("repository", q.rt.name), slog.String("reference", q.rt.ref()))
	}
	if q.cred.scheme != "" {
		attrs = append(attrs, slog.String("credential", q.cred.scheme)) // the scheme only
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()), slog.Bool("aborted", aborted))
	}
	m.log.LogAttrs(context.WithoutCancel(r.Context()), level, "mirror request", attrs...)
}

// responseWriter records the status and bytes of a response, extends the
// connection's write deadline before every write (a client that accepts
// nothing for the stall timeout is disconnected), and reports when the
// headers went out.
type responseWriter struct {
	http.ResponseWriter
	rc          *http.ResponseController
	stall       time.Duration
	onHeader    func()
	ep          endpoint // for the header-time metric
	status      int
	wroteHeader bool
	written     int64
	writeErr    error
}

func newResponseWriter(w http.ResponseWriter, stall time.Duration, onHeader func()) *responseWriter {
	rw := &responseWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: stall, onHeader: onHeader, status: http.StatusOK}
	rw.extend()
	return rw
}

func (w *responseWriter) extend() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.stall)) // unsupported by some test writers
}

// WriteHeader implements http.ResponseWriter.
func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.status, w.wroteHeader = code, true
	w.onHeader()
	w.ResponseWriter.WriteHeader(code)
}

// Write implements io.Writer.
func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.extend()
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	if err != nil && w.writeErr == nil {
		w.writeErr = err
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
