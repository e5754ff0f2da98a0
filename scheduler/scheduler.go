// Package scheduler is the scheduler daemon: a libp2p host admitted to the
// cluster by its shared secret, serving the schedule protocol
// (scheduler/service) over an in-memory model of hosts, tasks and peers
// (scheduler/resource), ranking parents with scheduler/evaluator and
// deciding with scheduler/scheduling. Several schedulers federate without
// talking to each other: every node hashes each task onto the same ring
// of schedulers, and the owner's state is soft — when it dies, peers
// re-register with the next owner and re-announce what they hold.
//
// See docs/scheduler.md.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/admission"
	"github.com/dragonfly-p2p/df/protocol/p2p"
	"github.com/dragonfly-p2p/df/scheduler/evaluator"
	"github.com/dragonfly-p2p/df/scheduler/resource"
	"github.com/dragonfly-p2p/df/scheduler/scheduling"
	"github.com/dragonfly-p2p/df/scheduler/service"
)

// AddrsFile is the file in the data directory where a running scheduler
// writes its full multiaddrs, one a line (read by `scheduler id`).
const AddrsFile = "addrs"

// Config is the scheduler configuration (YAML keys match the flags).
type Config struct {
	// DataDir holds the identity key and the addrs file.
	DataDir string `yaml:"data-dir"`
	// Listen are libp2p listen multiaddrs.
	Listen []string `yaml:"listen"`
	// ClusterSecretFile holds the cluster's shared secret.
	ClusterSecretFile string `yaml:"cluster-secret-file"`
	// OpsAddr serves /metrics, /livez, /readyz (empty: off).
	OpsAddr string `yaml:"ops-addr"`

	Scheduling scheduling.Config `yaml:"scheduling"`
	Weights    evaluator.Weights `yaml:"weights"`
	Limits     LimitsConfig      `yaml:"limits"`
	GC         GCConfig          `yaml:"gc"`
	// ProbeInterval is how often hosts are asked to measure RTTs.
	ProbeInterval time.Duration `yaml:"probe-interval"`
	// Manager registers the scheduler with a manager (keepalive) and
	// keeps its config (applications) from there; off when URL is empty.
	Manager ManagerConfig `yaml:"manager"`
}

// ManagerConfig connects the scheduler to a manager (docs/manager.md).
type ManagerConfig struct {
	// URL is the manager's base URL (http or https).
	URL string `yaml:"url"`
	// TokenFile holds a personal access token with the cluster scope.
	TokenFile string `yaml:"token-file"`
	// Cluster is the scheduler cluster this scheduler belongs to.
	Cluster string `yaml:"cluster"`
	// PullInterval is how often the config is pulled without a push.
	PullInterval time.Duration `yaml:"pull-interval"`
	// KeepaliveInterval is how often the scheduler tells the manager it is up.
	KeepaliveInterval time.Duration `yaml:"keepalive-interval"`
}

// LimitsConfig bounds the scheduler's state.
type LimitsConfig struct {
	MaxHosts        int `yaml:"max-hosts"`
	MaxTasksPerHost int `yaml:"max-tasks-per-host"`
	MaxPeersPerTask int `yaml:"max-peers-per-task"`
}

// GCConfig says when state is released.
type GCConfig struct {
	Interval             time.Duration `yaml:"interval"`
	HostTTL              time.Duration `yaml:"host-ttl"`
	PieceDownloadTimeout time.Duration `yaml:"piece-download-timeout"`
	PeerTTL              time.Duration `yaml:"peer-ttl"`
	TaskTTL              time.Duration `yaml:"task-ttl"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	gc := service.DefaultGC()
	return Config{
		DataDir:       "/var/lib/dragonfly/scheduler",
		Listen:        []string{"/ip4/0.0.0.0/udp/8002/quic-v1", "/ip4/0.0.0.0/tcp/8002"},
		OpsAddr:       "127.0.0.1:8003",
		Scheduling:    scheduling.Config{}.WithDefaults(),
		Weights:       evaluator.DefaultWeights(),
		Limits:        LimitsConfig{MaxHosts: 100_000, MaxTasksPerHost: 1024, MaxPeersPerTask: 50_000},
		GC:            GCConfig{Interval: 10 * time.Second, HostTTL: gc.HostTTL, PieceDownloadTimeout: gc.PieceDownloadTimeout, PeerTTL: gc.PeerTTL, TaskTTL: gc.TaskTTL},
		ProbeInterval: 30 * time.Second,
		Manager:       ManagerConfig{PullInterval: time.Minute, KeepaliveInterval: 15 * time.Second},
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is required"))
	}
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("listen: at least one address is required"))
	}
	if c.ClusterSecretFile == "" {
		errs = append(errs, errors.New("cluster-secret-file is required (create one: head -c 32 /dev/urandom | base64 > secret; chmod 600 secret)"))
	}
	if err := c.Scheduling.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("scheduling: %w", err))
	}
	if err := c.Weights.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("weights: %w", err))
	}
	for name, v := range map[string]int{"max-hosts": c.Limits.MaxHosts, "max-tasks-per-host": c.Limits.MaxTasksPerHost, "max-peers-per-task": c.Limits.MaxPeersPerTask} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("limits.%s: %d is negative", name, v))
		}
	}
	for name, v := range map[string]time.Duration{"gc.interval": c.GC.Interval, "gc.host-ttl": c.GC.HostTTL,
		"gc.piece-download-timeout": c.GC.PieceDownloadTimeout, "gc.peer-ttl": c.GC.PeerTTL, "gc.task-ttl": c.GC.TaskTTL, "probe-interval": c.ProbeInterval} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s: %v is negative", name, v))
		}
	}
	if c.Manager.URL != "" {
		if u, err := url.Parse(c.Manager.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("manager url %q: want http(s)://host:port", c.Manager.URL))
		}
		if c.Manager.TokenFile == "" || c.Manager.Cluster == "" {
			errs = append(errs, errors.New("manager token-file and cluster are required with a manager url"))
		}
		if c.Manager.PullInterval < time.Second || c.Manager.KeepaliveInterval < time.Second {
			errs = append(errs, errors.New("manager pull-interval and keepalive-interval must be at least 1s"))
		}
	}
	return errors.Join(errs...)
}

// Scheduler is a running scheduler.
type Scheduler struct {
	cfg   Config
	log   *slog.Logger
	host  host.Host
	adm   *admission.Admission
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	svc   *service.Service
	mgr   *managed // nil without a manager
}

type options struct {
	log      *slog.Logger
	reg      prometheus.Registerer
	secret   []byte
	hostOpts []p2p.Option
	iv       service.Intervals
}

// Option configures New.
type Option func(*options)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers metrics.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithSecret gives the cluster secret directly (instead of the file).
func WithSecret(b []byte) Option { return func(o *options) { o.secret = b } }

// WithHostOptions adds libp2p host options (testnet: resource limits).
func WithHostOptions(opts ...p2p.Option) Option {
	return func(o *options) { o.hostOpts = append(o.hostOpts, opts...) }
}

// WithIntervals overrides background intervals (tests).
func WithIntervals(iv service.Intervals) Option { return func(o *options) { o.iv = iv } }

// New builds a scheduler; nothing is served until Run.
func New(cfg Config, opts ...Option) (_ *Scheduler, err error) {
	o := options{log: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.secret != nil && cfg.ClusterSecretFile == "" {
		cfg.ClusterSecretFile = "(given)"
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if o.secret == nil {
		if o.secret, err = admission.ReadSecretFile(cfg.ClusterSecretFile); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	s := &Scheduler{cfg: cfg, log: o.log}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	gater := p2p.NewGater()
	if s.host, err = p2p.NewHost(cfg.DataDir, gater, append([]p2p.Option{
		p2p.WithListen(cfg.Listen...), p2p.WithRegisterer(o.reg), p2p.WithUserAgent("dragonfly-scheduler"),
	}, o.hostOpts...)...); err != nil {
		return nil, err
	}
	if s.adm, err = admission.New(s.host, o.secret, gater, admission.WithLogger(o.log.With("component", "admission")),
		admission.WithRegisterer(o.reg)); err != nil {
		return nil, err
	}
	gated := s.adm.GatedHost(s.host)
	if s.ps, err = pubsub.NewGossipSub(context.Background(), gated, pubsub.WithMessageSigning(true),
		pubsub.WithStrictSignatureVerification(true), pubsub.WithMaxMessageSize(1<<20)); err != nil {
		return nil, fmt.Errorf("gossipsub: %w", err)
	}
	if s.topic, err = s.ps.Join(protocol.TopicTaskDeletes); err != nil {
		return nil, fmt.Errorf("gossipsub: %w", err)
	}
	store := resource.NewStore(resource.Limits{MaxHosts: cfg.Limits.MaxHosts, MaxTasksPerHost: cfg.Limits.MaxTasksPerHost,
		MaxPeersPerTask: cfg.Limits.MaxPeersPerTask})
	sched := scheduling.New(store, evaluator.New(cfg.Weights), cfg.Scheduling)
	iv := o.iv
	if iv.GC == 0 {
		iv.GC = cfg.GC.Interval
	}
	if iv.Probe == 0 {
		iv.Probe = cfg.ProbeInterval
	}
	s.svc = service.New(gated, store, sched,
		service.WithLogger(o.log.With("component", "service")),
		service.WithRegisterer(o.reg),
		service.WithPublisher(topicPublisher{s.topic}),
		service.WithIntervals(iv),
		service.WithGC(resource.GCPolicy{HostTTL: cfg.GC.HostTTL, PieceDownloadTimeout: cfg.GC.PieceDownloadTimeout,
			PeerTTL: cfg.GC.PeerTTL, DoneTTL: time.Minute, TaskTTL: cfg.GC.TaskTTL}))
	if cfg.Manager.URL != "" {
		if s.mgr, err = newManaged(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

type topicPublisher struct{ t *pubsub.Topic }

func (p topicPublisher) Publish(ctx context.Context, data []byte) error {
	return p.t.Publish(ctx, data)
}

// ID returns the scheduler's peer ID.
func (s *Scheduler) ID() peer.ID { return s.host.ID() }

// Addrs returns the scheduler's full multiaddrs (…/p2p/<peer ID>), as
// nodes' --scheduler expects them.
func (s *Scheduler) Addrs() []string {
	var out []string
	for _, a := range s.host.Addrs() {
		out = append(out, a.String()+"/p2p/"+s.host.ID().String())
	}
	return out
}

// Ready reports whether the scheduler serves.
func (s *Scheduler) Ready() error {
	if !s.svc.Ready() {
		return errors.New("scheduler not serving")
	}
	return nil
}

// Run serves until ctx ends, then closes.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.close()
	addrsPath := filepath.Join(s.cfg.DataDir, AddrsFile)
	if err := os.WriteFile(addrsPath, []byte(strings.Join(s.Addrs(), "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", addrsPath, err)
	}
	defer os.Remove(addrsPath)
	s.log.Info("scheduler serving", "peer", s.host.ID(), "addrs", s.Addrs())
	if s.mgr == nil {
		return s.svc.Run(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mdone := make(chan struct{})
	go func() {
		defer close(mdone)
		if err := s.mgr.run(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("manager link stopped", "err", err)
		}
	}()
	err := s.svc.Run(ctx)
	cancel()
	<-mdone
	return err
}

func (s *Scheduler) close() {
	if s.topic != nil {
		_ = s.topic.Close()
	}
	if s.adm != nil {
		s.adm.Close()
	}
	if s.host != nil {
		_ = s.host.Close()
	}
}

// Knows reports whether the scheduler has state for a task.
func (s *Scheduler) Knows(id protocol.TaskID) bool { return s.svc.Knows(id) }
