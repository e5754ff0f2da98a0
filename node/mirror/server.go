package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// HTTP server hardening (security default 13).
const (
	idleTimeout    = 90 * time.Second
	maxHeaderBytes = 64 << 10
	shutdownGrace  = 5 * time.Second
)

// readHeaderTimeout closes a connection that sends no complete request
// header in time (a variable for tests).
var readHeaderTimeout = 10 * time.Second

// Listen opens the configured listener (Config.Listen; loopback unless
// AllowRemote).
func (m *Mirror) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", m.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("mirror listen: %w", err)
	}
	return ln, nil
}

// Run serves on the configured address until ctx ends.
func (m *Mirror) Run(ctx context.Context) error {
	ln, err := m.Listen()
	if err != nil {
		return err
	}
	return m.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down (in-flight requests get
// a short grace period) and closes ln.
func (m *Mirror) Serve(ctx context.Context, ln net.Listener) error {
	srv := m.httpServer()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
	}()
	m.log.Info("registry mirror serving", "addr", ln.Addr().String(), "default_registry", m.cfg.DefaultRegistry,
		"registries", len(m.cfg.Registries))
	err := srv.Serve(ln)
	cancel()
	<-stopped
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("mirror serve: %w", err)
}

// httpServer is the hardened server: header read deadline, idle timeout,
// header size cap. No overall read or write timeout: a blob may take long,
// and the handler extends a write deadline as bytes flow instead.
func (m *Mirror) httpServer() *http.Server {
	return &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
}
