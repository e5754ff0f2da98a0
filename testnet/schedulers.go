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
	Name   string
	Dir    string
	cancel context.CancelFunc
	done   chan error
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

// SchedulerAddrs returns every scheduler's full multiaddrs.
func (c *Cluster) SchedulerAddrs() []string {
	var out []string
	for _, s := range c.Schedulers() {
		out = append(out, s.Addrs()...)
	}
	return out
}

func (c *Cluster) startScheduler(ctx context.Context, i int) (*Scheduler, error) {
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
	sc, err := scheduler.New(cfg, scheduler.WithSecret(c.secret),
		scheduler.WithLogger(c.opts.log.With("scheduler", name)),
		scheduler.WithHostOptions(p2p.WithLimits(Limits()), p2p.WithConnWatermarks(2048, 4096)),
		scheduler.WithIntervals(service.Intervals{Probe: 2 * time.Second, GC: 5 * time.Second}))
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Scheduler{Scheduler: sc, Name: name, Dir: dir, cancel: cancel, done: make(chan error, 1)}
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
