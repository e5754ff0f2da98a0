package mirror

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Mirror is the registry mirror. Build it with New, serve it with Run (its
// configured listener), Serve (a given listener) or Handler.
type Mirror struct {
	cfg     Config
	dl      Downloads
	up      *upstream
	access  *accessCache
	checks  singleflight.Group
	log     *slog.Logger
	metrics *metrics
	sem     chan struct{}
	def     *registry            // nil: requests without ns are refused
	hostMap map[string]*registry // Host header → registry
}

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// Option configures New (and WrapOrigin).
type Option func(*options)

// WithLogger sets the logger (default: discard). Records never carry
// request headers or credentials.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithRegisterer exports the mirror's metrics.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// New returns a mirror that fetches content through downloads (the node's
// download conductor: FromDownloader). cfg is validated; zero values take
// the defaults.
func New(downloads Downloads, cfg Config, opts ...Option) (*Mirror, error) {
	if downloads == nil {
		return nil, fmt.Errorf("%w: no downloader", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	cfg = cfg.withDefaults()
	met := newMetrics()
	if o.reg != nil {
		if err := met.register(o.reg); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	up, err := newUpstream(cfg, o.log, met)
	if err != nil {
		return nil, err
	}
	m := &Mirror{
		cfg: cfg, dl: downloads, up: up, access: newAccessCache(), log: o.log, metrics: met,
		sem: make(chan struct{}, cfg.MaxConcurrentRequests), hostMap: make(map[string]*registry),
	}
	if cfg.DefaultRegistry != "" {
		m.def = up.lookup(strings.ToLower(cfg.DefaultRegistry))
	}
	for host, name := range cfg.Mappings {
		m.hostMap[strings.ToLower(host)] = up.lookup(strings.ToLower(name))
	}
	return m, nil
}

// Handler returns the HTTP handler (tests, or a caller's own server).
func (m *Mirror) Handler() http.Handler { return http.HandlerFunc(m.serveHTTP) }

// Config returns the effective configuration (defaults applied).
func (m *Mirror) Config() Config { return m.cfg }

// registryFor picks the upstream of a request: ?ns=, a Host mapping, or the
// default. An unknown registry is refused before any outbound connection.
func (m *Mirror) registryFor(r *http.Request) (*registry, error) {
	ns, err := parseNS(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	if ns != "" {
		if reg := m.up.lookup(ns); reg != nil {
			return reg, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrRegistryNotMirrored, ns)
	}
	host := strings.ToLower(r.Host)
	if reg, ok := m.hostMap[host]; ok {
		return reg, nil
	}
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
		if reg, ok := m.hostMap[host[:i]]; ok {
			return reg, nil
		}
	}
	if m.def != nil {
		return m.def, nil
	}
	return nil, fmt.Errorf("%w: the request names no registry (no ns) and there is no default registry", ErrRegistryNotMirrored)
}
