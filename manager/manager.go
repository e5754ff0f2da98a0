// Package manager is the manager daemon: it opens the store, creates the
// root user on first start, loads or generates the JWT signing key, and
// serves the REST API (and the console, when one is mounted) over HTTP(S),
// while the job runner works through the durable job queue.
package manager

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dragonfly-p2p/df/manager/api"
	"github.com/dragonfly-p2p/df/manager/auth"
	"github.com/dragonfly-p2p/df/manager/dynconfig"
	"github.com/dragonfly-p2p/df/manager/jobs"
	"github.com/dragonfly-p2p/df/manager/p2pexec"
	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/protocol/admission"
	"github.com/dragonfly-p2p/df/protocol/dynclient"
	"github.com/dragonfly-p2p/df/protocol/p2p"
)

// Config is the manager's configuration (YAML keys; unknown keys are errors).
type Config struct {
	DataDir      string        `yaml:"data_dir"`
	Addr         string        `yaml:"addr"`
	OpsAddr      string        `yaml:"ops_addr"`
	TLSCertFile  string        `yaml:"tls_cert_file"`
	TLSKeyFile   string        `yaml:"tls_key_file"`
	JWTKeyFile   string        `yaml:"jwt_key_file"` // empty: generated at first start and stored
	SessionTTL   time.Duration `yaml:"session_ttl"`
	InstanceTTL  time.Duration `yaml:"instance_ttl"`
	BcryptCost   int           `yaml:"bcrypt_cost"`
	PreheatAllow []string      `yaml:"preheat_allow"` // CIDRs preheat may reach despite SSRF rules
	// PreheatPlainHTTP lets image preheat talk plain HTTP to registries (labs, tests).
	PreheatPlainHTTP bool `yaml:"preheat_plain_http"`
	// ClusterSecretFile enables jobs: the manager joins the cluster as an
	// admitted libp2p host and has seed peers carry jobs out.
	ClusterSecretFile string `yaml:"cluster_secret_file"`
	// P2PListen are the manager's libp2p listen multiaddrs.
	P2PListen []string `yaml:"p2p_listen"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:     "/var/lib/dragonfly/manager",
		Addr:        "127.0.0.1:8080",
		SessionTTL:  12 * time.Hour,
		InstanceTTL: time.Minute,
		BcryptCost:  auth.DefaultBcryptCost,
		P2PListen:   []string{"/ip4/0.0.0.0/udp/0/quic-v1", "/ip4/0.0.0.0/tcp/0"},
	}
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("manager: invalid configuration")

// Validate checks the configuration.
func (c *Config) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrConfig}, a...)...) }
	if c.DataDir == "" {
		return bad("data_dir is required")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return bad("addr %q: %v", c.Addr, err)
	}
	if c.OpsAddr != "" {
		if _, _, err := net.SplitHostPort(c.OpsAddr); err != nil {
			return bad("ops_addr %q: %v", c.OpsAddr, err)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return bad("tls_cert_file and tls_key_file go together")
	}
	if c.SessionTTL < time.Minute || c.SessionTTL > 7*24*time.Hour {
		return bad("session_ttl must be 1m..168h")
	}
	if c.InstanceTTL < 5*time.Second || c.InstanceTTL > time.Hour {
		return bad("instance_ttl must be 5s..1h")
	}
	if c.BcryptCost < 10 || c.BcryptCost > 15 {
		return bad("bcrypt_cost must be 10..15")
	}
	for _, a := range c.P2PListen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return bad("p2p_listen %q: %v", a, err)
		}
	}
	for _, p := range c.PreheatAllow {
		if _, err := netip.ParsePrefix(p); err != nil {
			return bad("preheat_allow %q: %v", p, err)
		}
	}
	return nil
}

// Manager is a running manager.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	st      *store.Store
	api     *api.Server
	dyn     *dynconfig.Service
	out     io.Writer
	console func(*api.Server) http.Handler
	cost    int
	ps      *pubsub.PubSub
	exec    jobs.Executor
	reg     prometheus.Registerer
	queue   *jobs.Queue
	p2p     *p2pexec.Executor
	extra   []runner
	secret  []byte
	p2pOpts []p2p.Option

	mu    sync.Mutex
	addr  string
	ready bool
}

type runner interface {
	Run(ctx context.Context) error
}

// Option configures a Manager.
type Option func(*Manager)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// WithBootstrapOutput sets where the first-start root password is printed (default stderr).
func WithBootstrapOutput(w io.Writer) Option { return func(m *Manager) { m.out = w } }

// WithConsole mounts a console built from the API server at "/".
func WithConsole(fn func(*api.Server) http.Handler) Option {
	return func(m *Manager) { m.console = fn }
}

// WithPubSub makes the manager announce every dynconfig version on the
// config topic of ps (nodes and schedulers pull on announcement). Create
// ps with pubsub.WithFloodPublish(true): the manager is not in the topic's
// mesh, and flood publishing reaches every subscribed peer it is connected to.
func WithPubSub(ps *pubsub.PubSub) Option { return func(m *Manager) { m.ps = ps } }

// WithExecutor enables jobs: ex carries preheat, delete-task and get-task
// out on the seed peers. Without one, POST /api/v1/jobs answers 503.
func WithExecutor(ex jobs.Executor) Option { return func(m *Manager) { m.exec = ex } }

// WithClusterSecret gives the cluster secret directly instead of reading
// cluster_secret_file (testnet): the manager starts its libp2p executor.
func WithClusterSecret(s []byte) Option { return func(m *Manager) { m.secret = s } }

// WithP2POptions adds libp2p host options to the executor's host (testnet limits).
func WithP2POptions(opts ...p2p.Option) Option {
	return func(m *Manager) { m.p2pOpts = append(m.p2pOpts, opts...) }
}

// WithRegisterer registers the manager's metrics with reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(m *Manager) { m.reg = reg } }

// withBcryptCost lowers the bcrypt cost below the config minimum (tests only).
func withBcryptCost(c int) Option { return func(m *Manager) { m.cost = c } }

// New opens the store and prepares the manager; Run serves it.
func New(cfg Config, opts ...Option) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: slog.New(slog.DiscardHandler), out: os.Stderr, cost: cfg.BcryptCost}
	for _, o := range opts {
		o(m)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("manager: data dir: %w", err)
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, "manager.db"))
	if err != nil {
		return nil, err
	}
	m.st = st
	if err := m.startExecutor(); err != nil {
		st.Close()
		return nil, err
	}
	if err := m.init(); err != nil {
		if m.p2p != nil {
			m.p2p.Close()
		}
		st.Close()
		return nil, err
	}
	return m, nil
}

// startExecutor starts the libp2p executor when a cluster secret is
// configured and no executor was given.
func (m *Manager) startExecutor() error {
	if m.secret == nil && m.cfg.ClusterSecretFile != "" {
		s, err := admission.ReadSecretFile(m.cfg.ClusterSecretFile)
		if err != nil {
			return fmt.Errorf("manager: cluster secret: %w", err)
		}
		m.secret = s
	}
	if m.secret == nil || m.exec != nil {
		return nil
	}
	ex, err := p2pexec.New(m.cfg.DataDir, m.secret, directory{m}, p2pexec.WithLogger(m.log.With("component", "p2pexec")),
		p2pexec.WithRegisterer(m.reg), p2pexec.WithHostOptions(append([]p2p.Option{p2p.WithListen(m.cfg.P2PListen...)}, m.p2pOpts...)...))
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	m.p2p, m.exec = ex, ex
	if m.ps == nil {
		m.ps = ex.PubSub()
	}
	m.extra = append(m.extra, ex)
	return nil
}

// P2P returns the libp2p executor (nil without a cluster secret).
func (m *Manager) P2P() *p2pexec.Executor { return m.p2p }

func (m *Manager) init() error {
	pw, created, err := api.EnsureRoot(m.st, m.cost)
	if err != nil {
		return fmt.Errorf("manager: create root: %w", err)
	}
	if created {
		fmt.Fprintf(m.out, "manager: created user root with password %s\nmanager: it is shown only this once; change it with PUT /api/v1/me/password\n", pw)
	}
	key, err := m.signingKey()
	if err != nil {
		return err
	}
	signer, err := auth.NewSigner(key, m.cfg.SessionTTL, nil)
	if err != nil {
		return err
	}
	m.dyn = dynconfig.New(m.st, dynconfig.WithInstanceTTL(m.cfg.InstanceTTL))
	opts := []api.Option{api.WithLogger(m.log), api.WithBcryptCost(m.cost), api.WithDynconfig(m.dyn),
		api.WithInstanceTTL(m.cfg.InstanceTTL), api.WithRegisterer(m.reg), api.WithOnChange(func(string) { m.dyn.Invalidate() })}
	if m.exec != nil {
		var allow []netip.Prefix
		for _, p := range m.cfg.PreheatAllow {
			allow = append(allow, netip.MustParsePrefix(p)) // checked by Validate
		}
		guard := jobs.NewGuard(allow)
		m.queue = jobs.New(m.st, m.exec, jobs.NewImageResolver(guard, m.cfg.PreheatPlainHTTP), guard, jobs.WithLogger(m.log))
		opts = append(opts, api.WithJobs(m.queue))
		m.extra = append(m.extra, m.queue)
	}
	// The console needs the API server and the API server mounts the
	// console: one server (one login limiter, one set of metrics), with
	// the console handler filled in once the server exists.
	var console http.Handler
	if m.console != nil {
		opts = append(opts, api.WithConsole(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { console.ServeHTTP(w, r) })))
	}
	m.api = api.New(m.st, signer, opts...)
	if m.console != nil {
		console = m.console(m.api)
	}
	if m.ps != nil {
		topic, err := m.ps.Join(dynclient.Topic)
		if err != nil {
			return fmt.Errorf("manager: join %s: %w", dynclient.Topic, err)
		}
		m.dyn.OnVersion(func(v string) {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := dynclient.Publish(ctx, topic, v); err != nil {
					m.log.Warn("manager: publish config version", "err", err)
				}
			}()
		})
	}
	m.extra = append(m.extra, runFunc(m.refresh))
	return nil
}

func (m *Manager) signingKey() ([]byte, error) {
	if m.cfg.JWTKeyFile != "" {
		key, err := os.ReadFile(m.cfg.JWTKeyFile)
		if err != nil {
			return nil, fmt.Errorf("manager: jwt key: %w", err)
		}
		if len(key) < auth.MinKeyLen {
			return nil, fmt.Errorf("%w: jwt_key_file holds %d bytes, need ≥ %d", ErrConfig, len(key), auth.MinKeyLen)
		}
		return key, nil
	}
	return m.st.Secret("jwt-signing-key", auth.NewKey)
}

type runFunc func(context.Context) error

func (f runFunc) Run(ctx context.Context) error { return f(ctx) }

// refresh rebuilds the dynconfig snapshot periodically, so that schedulers
// and seed peers that stop sending keepalives drop out (and a new version
// is announced) without any API call.
func (m *Manager) refresh(ctx context.Context) error {
	t := time.NewTicker(m.cfg.InstanceTTL / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.dyn.Invalidate()
		}
	}
}

// Store returns the manager's store.
func (m *Manager) Store() *store.Store { return m.st }

// API returns the REST API server.
func (m *Manager) API() *api.Server { return m.api }

// Dynconfig returns the dynconfig service.
func (m *Manager) Dynconfig() *dynconfig.Service { return m.dyn }

// Addr returns the HTTP listener's address once Run listens.
func (m *Manager) Addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr
}

// Ready reports whether the manager serves requests.
func (m *Manager) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ready {
		return errors.New("manager: not serving yet")
	}
	return nil
}

// Run serves until ctx ends, then shuts down and closes the store.
func (m *Manager) Run(ctx context.Context) error {
	defer m.st.Close()
	ln, err := net.Listen("tcp", m.cfg.Addr)
	if err != nil {
		return fmt.Errorf("manager: listen: %w", err)
	}
	srv := &http.Server{Handler: m.api.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)}
	scheme := "http"
	if m.cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(m.cfg.TLSCertFile, m.cfg.TLSKeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("manager: tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	m.mu.Lock()
	m.addr, m.ready = ln.Addr().String(), true
	m.mu.Unlock()
	m.log.Info("manager: serving", "url", scheme+"://"+ln.Addr().String())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(m.extra)+1)
	for _, r := range m.extra {
		wg.Go(func() {
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				errs <- err
				cancel()
			}
		})
	}
	wg.Go(func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	})
	err = srv.Serve(ln)
	cancel()
	wg.Wait()
	m.mu.Lock()
	m.ready = false
	m.mu.Unlock()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	select {
	case e := <-errs:
		return e
	default:
	}
	return err
}
