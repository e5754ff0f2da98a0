package clikit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a Prometheus registry with the Go and process
// collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Check is a named readiness check.
type Check func(ctx context.Context) error

// OpsServer serves /metrics, /livez, /readyz and, on a loopback address
// only, /debug/pprof/ (profiles reveal memory contents and cost CPU: never
// expose them beyond the host).
type OpsServer struct {
	addr     string
	gatherer prometheus.Gatherer
	log      *slog.Logger

	mu     sync.Mutex
	checks map[string]Check
	ln     net.Listener
}

// OpsOption configures NewOpsServer.
type OpsOption func(*OpsServer)

// WithGatherer serves these metrics (default: a NewRegistry).
func WithGatherer(g prometheus.Gatherer) OpsOption { return func(s *OpsServer) { s.gatherer = g } }

// WithOpsLogger sets the logger.
func WithOpsLogger(l *slog.Logger) OpsOption { return func(s *OpsServer) { s.log = l } }

// WithCheck adds a readiness check.
func WithCheck(name string, c Check) OpsOption {
	return func(s *OpsServer) { s.checks[name] = c }
}

// NewOpsServer returns an ops server for addr ("host:port"; port 0 picks one).
func NewOpsServer(addr string, opts ...OpsOption) *OpsServer {
	s := &OpsServer{addr: addr, log: slog.New(slog.DiscardHandler), checks: make(map[string]Check)}
	for _, o := range opts {
		o(s)
	}
	if s.gatherer == nil {
		s.gatherer = NewRegistry()
	}
	return s
}

// AddCheck adds a readiness check after construction.
func (s *OpsServer) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

// Addr returns the bound address once Run listens (or Listen was called).
func (s *OpsServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Listen binds the address (Run does it if needed).
func (s *OpsServer) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("ops listener: %w", err)
	}
	s.ln = ln
	return nil
}

// Handler returns the ops HTTP handler.
func (s *OpsServer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.loopback() {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func (s *OpsServer) loopback() bool {
	host, _, err := net.SplitHostPort(s.addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *OpsServer) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make(map[string]Check, len(s.checks))
	for n, c := range s.checks {
		checks[n] = c
	}
	s.mu.Unlock()
	sort.Strings(names)
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	results := make(map[string]string, len(names))
	ok := true
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			results[n] = err.Error()
			ok = false
		} else {
			results[n] = "ok"
		}
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	if _, verbose := r.URL.Query()["verbose"]; verbose || !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": ok, "checks": results})
		return
	}
	w.Write([]byte("ok\n"))
}

// Run serves until ctx ends, then shuts down gracefully.
func (s *OpsServer) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	s.log.Info("ops listener up", "addr", s.ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}
