package clikit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a fresh Prometheus registry holding the Go runtime
// and process collectors. Each daemon creates one, registers its own
// metrics on it and serves it with [WithGatherer]; nothing uses the global
// default registry.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// OpsServer is a daemon's operations listener, separate from its service
// ports. It serves:
//
//   - /metrics: the Prometheus gatherer ([WithGatherer]; default a
//     [NewRegistry]);
//   - /livez: 200 "ok" as long as the process serves HTTP at all;
//   - /readyz: runs the readiness checks ([WithCheck], [OpsServer.AddCheck])
//     concurrently; 200 "ok" when all pass, else 503 listing the failures
//     ("[-]name failed: reason"); with ?verbose every check is listed;
//   - /debug/pprof/: only when the listener is bound to a loopback address.
//     Profiles are unauthenticated, expose the command line and the shape of
//     memory, and a CPU profile or trace costs the process real CPU for as
//     long as the caller asks: they are for an operator on the host (or
//     through ssh -L / kubectl port-forward), never for the network that
//     scrapes /metrics.
type OpsServer struct {
	addr            string
	gatherer        prometheus.Gatherer
	log             *slog.Logger
	checkTimeout    time.Duration
	shutdownTimeout time.Duration
	checks          *checks

	mu      sync.Mutex
	ln      net.Listener
	running bool
}

// OpsOption configures [NewOpsServer].
type OpsOption func(*OpsServer)

// WithGatherer serves g on /metrics instead of a fresh [NewRegistry].
func WithGatherer(g prometheus.Gatherer) OpsOption {
	return func(s *OpsServer) { s.gatherer = g }
}

// WithOpsLogger logs the listener's life and HTTP errors to l (default:
// nothing).
func WithOpsLogger(l *slog.Logger) OpsOption {
	return func(s *OpsServer) { s.log = l }
}

// WithCheck adds the readiness check c under name (see
// [OpsServer.AddCheck]).
func WithCheck(name string, c Check) OpsOption {
	return func(s *OpsServer) { s.AddCheck(name, c) }
}

// WithCheckTimeout bounds each readiness check (default 5s); a check that
// has not answered by then counts as failed.
func WithCheckTimeout(d time.Duration) OpsOption {
	return func(s *OpsServer) { s.checkTimeout = d }
}

// WithShutdownTimeout bounds the graceful shutdown once Run's context ends
// (default 5s); connections still open then are closed.
func WithShutdownTimeout(d time.Duration) OpsOption {
	return func(s *OpsServer) { s.shutdownTimeout = d }
}

// NewOpsServer returns an ops server for addr ("host:port"; port 0 picks a
// free port, see [OpsServer.Addr]). Nothing listens until Listen or Run.
func NewOpsServer(addr string, opts ...OpsOption) *OpsServer {
	s := &OpsServer{
		addr:            addr,
		log:             slog.New(slog.DiscardHandler),
		checkTimeout:    5 * time.Second,
		shutdownTimeout: 5 * time.Second,
		checks:          newChecks(),
	}
	for _, o := range opts {
		o(s)
	}
	if s.gatherer == nil {
		s.gatherer = NewRegistry()
	}
	return s
}

// AddCheck adds the readiness check c under name; it may be called while
// the server runs (for components that come up later). It panics if name
// is empty or taken, or c is nil: those are wiring mistakes.
func (s *OpsServer) AddCheck(name string, c Check) { s.checks.add(name, c) }

// Listen binds the address, so that [OpsServer.Addr] is known before Run
// (Run calls it if needed). Calling it again does nothing.
func (s *OpsServer) Listen(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("ops listener: %w", err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address ("127.0.0.1:43121") once listening, else
// the configured one.
func (s *OpsServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return s.addr
	}
	return s.ln.Addr().String()
}

// Run listens (unless Listen already did) and serves until ctx ends, then
// shuts down gracefully: in-flight requests see their context cancelled and
// get the shutdown timeout to finish. It returns nil after a shutdown, or
// the error that stopped the listener. An OpsServer runs once.
func (s *OpsServer) Run(ctx context.Context) error {
	if err := s.Listen(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("ops listener: already running")
	}
	s.running = true
	ln := s.ln
	s.mu.Unlock()

	pprofOn := isLoopback(ln.Addr())
	srv := &http.Server{
		Handler:           s.handler(pprofOn),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// Long enough for /debug/pprof/profile?seconds=60.
		WriteTimeout:   90 * time.Second,
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: 16 << 10,
		BaseContext:    func(net.Listener) context.Context { return ctx },
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("ops listener up", "addr", ln.Addr().String(), "pprof", pprofOn)

	select {
	case err := <-served:
		return fmt.Errorf("ops listener %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("ops listener: shutdown timed out, closing connections", "err", err)
		srv.Close()
	}
	<-served // http.ErrServerClosed
	s.log.Info("ops listener down", "addr", ln.Addr().String())
	return nil
}

// handler is the ops mux; pprof is mounted only when pprofOn.
func (s *OpsServer) handler(pprofOn bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		_, verbose := r.URL.Query()["verbose"]
		status, body := s.checks.report(r.Context(), s.checkTimeout, verbose)
		writeText(w, status, body)
	})
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves heap, goroutine, …
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func writeText(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// isLoopback reports whether a bound address only accepts connections
// from this host. The wildcard (":9100", "0.0.0.0", "[::]") is not.
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
