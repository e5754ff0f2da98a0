package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dragonfly-p2p/df/protocol/p2p"
	"github.com/dragonfly-p2p/df/scheduler"
	"github.com/dragonfly-p2p/df/scheduler/service"
)

// Scheduler is one running in-process scheduler.
type Scheduler struct {
	*scheduler.Scheduler
	Name    string
	Dir     string
	managed bool // registered with the manager, not in the nodes' static lists
	cancel  context.CancelFunc
	done    chan error
}

// WithSchedulers starts k schedulers before the nodes; every node gets all
// of them in its configuration (the consistent-hash ring).
func WithSchedulers(k int) Option { return func(o *ClusterOptions) { o.schedulers = k } }

// Schedulers returns the cluster's schedulers (running or stopped).
func (c *Cluster) Schedulers() []*Scheduler {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Scheduler(nil), c.scheds...)
}

// SchedulerAddrs returns the full multiaddrs of every scheduler nodes list
// statically (not those that only the manager announces).
func (c *Cluster) SchedulerAddrs() []string {
	var out []string
	for _, s := range c.Schedulers() {
		if !s.managed {
			out = append(out, s.Addrs()...)
		}
	}
	return out
}

// AddManagedScheduler starts one more scheduler that registers with the
// manager given to UseManager as a member of cluster: nodes following the
// manager put it on their ring; nodes' static lists do not include it.
func (c *Cluster) AddManagedScheduler(ctx context.Context, cluster string) (*Scheduler, error) {
	c.mu.Lock()
	i, mgr := len(c.scheds), c.mgr
	c.mu.Unlock()
	if mgr.URL == "" {
		return nil, errors.New("testnet: AddManagedScheduler needs UseManager first")
	}
	return c.startScheduler(ctx, i, func(cfg *scheduler.Config) {
		cfg.Manager = scheduler.ManagerConfig{URL: mgr.URL, TokenFile: mgr.TokenFile, Cluster: cluster,
			PullInterval: time.Second, KeepaliveInterval: time.Second}
	})
}

func (c *Cluster) startScheduler(ctx context.Context, i int, edit ...func(*scheduler.Config)) (*Scheduler, error) {
	name := fmt.Sprintf("sched%02d", i)
	dir := filepath.Join(c.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := scheduler.DefaultConfig()
	cfg.DataDir = dir
	cfg.OpsAddr = ""
	if c.opts.transport == "tcp" {
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	} else {
		cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	for _, f := range edit {
		f(&cfg)
	}
	sc, err := scheduler.New(cfg, scheduler.WithSecret(c.secret),
		scheduler.WithLogger(c.opts.log.With("scheduler", name)),
		scheduler.WithHostOptions(p2p.WithLimits(Limits()), p2p.WithConnWatermarks(2048, 4096)),
		scheduler.WithIntervals(service.Intervals{Probe: 2 * time.Second, GC: 5 * time.Second}))
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Scheduler{Scheduler: sc, Name: name, Dir: dir, managed: cfg.Manager.URL != "", cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- sc.Run(rctx) }()
	if err := WaitFor(ctx, 5*time.Millisecond, func() bool { return sc.Ready() == nil }); err != nil {
		cancel()
		return nil, err
	}
	c.mu.Lock()
	c.scheds = append(c.scheds, s)
	c.mu.Unlock()
	return s, nil
}

// Stop stops the scheduler and waits for it (idempotent).
func (s *Scheduler) Stop() error {
	s.cancel()
	err := <-s.done
	s.done <- err
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
