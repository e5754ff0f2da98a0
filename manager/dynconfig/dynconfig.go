// Package dynconfig builds what nodes and schedulers ask the manager for:
// the scheduler clusters that serve a host with their active schedulers and
// seed peers, the node configuration (rate limits, registries, GC policy) and,
// for schedulers, the application priority rules. Answers come from an
// in-memory snapshot rebuilt when the store changes (Invalidate) and at least
// every Refresh interval, so a request costs a search over the clusters, not a
// database scan. Each snapshot carries a version; Notify callbacks publish
// the new version so clients can pull when it changes.
package dynconfig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/dragonfly-p2p/df/manager/searcher"
	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/protocol/dynclient"
)

// NodeConfigName is the config document holding the cluster-wide node
// config; a cluster's own Config overrides its keys.
const NodeConfigName = "node"

// The answers' types are the clients' wire types (protocol/dynclient).
type (
	// Instance is a scheduler or seed peer as clients see it.
	Instance = dynclient.Instance
	// ClusterConfig is one cluster in an answer.
	ClusterConfig = dynclient.ClusterConfig
	// NodeConfig is the answer to a node.
	NodeConfig = dynclient.NodeConfig
	// Application is an application rule as schedulers see it.
	Application = dynclient.Application
	// SchedulerConfig is the answer to a scheduler.
	SchedulerConfig = dynclient.SchedulerConfig
)

type snapshot struct {
	version  string
	search   *searcher.Searcher
	clusters map[string]ClusterConfig
	apps     []Application
	built    time.Time
}

// Service answers dynconfig requests.
type Service struct {
	st      *store.Store
	ttl     time.Duration
	refresh time.Duration
	now     func() time.Time

	mu     sync.Mutex
	snap   *snapshot
	dirty  bool
	notify []func(version string)
}

// Option configures a Service.
type Option func(*Service)

// WithInstanceTTL sets how long after its last keepalive an instance counts as active.
func WithInstanceTTL(d time.Duration) Option { return func(s *Service) { s.ttl = d } }

// WithRefresh sets the maximum snapshot age.
func WithRefresh(d time.Duration) Option { return func(s *Service) { s.refresh = d } }

// WithClock sets the clock.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// New returns a Service over st.
func New(st *store.Store, opts ...Option) *Service {
	s := &Service{st: st, ttl: time.Minute, refresh: 5 * time.Second, now: time.Now, dirty: true}
	for _, o := range opts {
		o(s)
	}
	return s
}

// OnVersion registers fn, called (outside locks) with every new snapshot version.
func (s *Service) OnVersion(fn func(version string)) {
	s.mu.Lock()
	s.notify = append(s.notify, fn)
	s.mu.Unlock()
}

// Invalidate marks the snapshot stale and rebuilds it now, so that
// subscribers hear about the change at once.
func (s *Service) Invalidate() {
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
	_, _ = s.current()
}

// Version returns the current snapshot version.
func (s *Service) Version() (string, error) {
	sn, err := s.current()
	if err != nil {
		return "", err
	}
	return sn.version, nil
}

func (s *Service) current() (*snapshot, error) {
	s.mu.Lock()
	if s.snap != nil && !s.dirty && s.now().Sub(s.snap.built) < s.refresh {
		sn := s.snap
		s.mu.Unlock()
		return sn, nil
	}
	s.dirty = false
	s.mu.Unlock()
	sn, err := s.build()
	if err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return nil, err
	}
	s.mu.Lock()
	changed := s.snap == nil || s.snap.version != sn.version
	s.snap = sn
	fns := append([]func(string){}, s.notify...)
	s.mu.Unlock()
	if changed {
		for _, fn := range fns {
			fn(sn.version)
		}
	}
	return sn, nil
}

func (s *Service) build() (*snapshot, error) {
	clusters, err := s.st.Clusters()
	if err != nil {
		return nil, err
	}
	search, err := searcher.New(clusters)
	if err != nil {
		return nil, err
	}
	base := map[string]any{}
	if d, err := s.st.Config(NodeConfigName, 0); err == nil {
		base = d.Data
	}
	sn := &snapshot{search: search, clusters: map[string]ClusterConfig{}, built: s.now()}
	conv := func(in []store.Instance) []Instance {
		out := []Instance{}
		for _, i := range in {
			if i.State == store.StateActive {
				out = append(out, Instance{ID: i.ID, Hostname: i.Hostname, IP: i.IP, Addrs: i.Addrs, IDC: i.IDC, Location: i.Location})
			}
		}
		return out
	}
	for _, c := range clusters {
		scheds, err := s.st.Instances(store.KindScheduler, c.Name, s.ttl)
		if err != nil {
			return nil, err
		}
		seeds, err := s.st.Instances(store.KindSeedPeer, c.Name, s.ttl)
		if err != nil {
			return nil, err
		}
		cfg := map[string]any{}
		for k, v := range base {
			cfg[k] = v
		}
		for k, v := range c.Config {
			cfg[k] = v
		}
		sn.clusters[c.Name] = ClusterConfig{Name: c.Name, Schedulers: conv(scheds), SeedPeers: conv(seeds), Config: cfg}
	}
	apps, err := s.st.Applications()
	if err != nil {
		return nil, err
	}
	sn.apps = []Application{}
	for _, a := range apps {
		sn.apps = append(sn.apps, Application{Name: a.Name, URLPatterns: a.URLPatterns, Priority: a.Priority})
	}
	// The version is a digest of the content, so it changes exactly when an answer would.
	h := sha256.New()
	order := make([]ClusterConfig, 0, len(clusters))
	for _, c := range clusters {
		order = append(order, sn.clusters[c.Name])
	}
	if err := json.NewEncoder(h).Encode([]any{clusters, order, sn.apps}); err != nil {
		return nil, err
	}
	sn.version = hex.EncodeToString(h.Sum(nil)[:12])
	return sn, nil
}

// NodeConfig returns the clusters serving h, best first.
func (s *Service) NodeConfig(ctx context.Context, h searcher.Host) (any, error) {
	return s.Node(ctx, h)
}

// Node is NodeConfig with its concrete type.
func (s *Service) Node(_ context.Context, h searcher.Host) (NodeConfig, error) {
	sn, err := s.current()
	if err != nil {
		return NodeConfig{}, err
	}
	found := sn.search.Find(h)
	out := NodeConfig{Version: sn.version, Clusters: make([]ClusterConfig, 0, len(found))}
	for _, c := range found {
		out.Clusters = append(out.Clusters, sn.clusters[c.Name])
	}
	return out, nil
}

// SchedulerConfig returns the config of a scheduler of cluster.
func (s *Service) SchedulerConfig(ctx context.Context, cluster string) (any, error) {
	return s.Scheduler(ctx, cluster)
}

// Scheduler is SchedulerConfig with its concrete type.
func (s *Service) Scheduler(_ context.Context, cluster string) (SchedulerConfig, error) {
	sn, err := s.current()
	if err != nil {
		return SchedulerConfig{}, err
	}
	c, ok := sn.clusters[cluster]
	if !ok {
		return SchedulerConfig{}, fmt.Errorf("cluster %q: %w", cluster, store.ErrNotFound)
	}
	return SchedulerConfig{Version: sn.version, Cluster: c, Applications: sn.apps}, nil
}
