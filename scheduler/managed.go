package scheduler

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/dragonfly-p2p/df/protocol/dynclient"
	"github.com/dragonfly-p2p/df/scheduler/service"
)

// DynconfigCacheFile is where a managed scheduler keeps the manager's last
// good answer (in its data directory).
const DynconfigCacheFile = "dynconfig.json"

// managed is the scheduler's link to the manager: keepalive (which puts it
// on the nodes' ring) and its config, pulled and pushed, cached on disk.
type managed struct {
	s     *Scheduler
	base  string
	token string
	hc    *http.Client
	dyn   *dynclient.Client[dynclient.SchedulerConfig]
}

func newManaged(s *Scheduler) (*managed, error) {
	raw, err := os.ReadFile(s.cfg.Manager.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("manager token: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return nil, fmt.Errorf("manager token file %s: want one token on one line", s.cfg.Manager.TokenFile)
	}
	m := &managed{s: s, base: strings.TrimSuffix(s.cfg.Manager.URL, "/"), token: tok, hc: &http.Client{Timeout: 10 * time.Second}}
	m.dyn = dynclient.New[dynclient.SchedulerConfig](
		m.base+dynclient.SchedulerConfigPath+"?cluster="+url.QueryEscape(s.cfg.Manager.Cluster), tok,
		filepath.Join(s.cfg.DataDir, DynconfigCacheFile),
		dynclient.WithHTTPClient(m.hc), dynclient.WithInterval(s.cfg.Manager.PullInterval),
		dynclient.WithLogger(s.log.With("component", "dynclient")))
	var last string
	m.dyn.OnUpdate(func(c dynclient.SchedulerConfig) {
		if c.Version == last {
			return // every pull delivers the config; log new versions only
		}
		last = c.Version
		if err := s.SetApplications(c.Applications); err != nil {
			s.log.Warn("manager's application rules not applied; keeping the previous ones", "version", c.Version, "err", err)
		}
		s.log.Info("manager config applied", "version", c.Version, "cluster", c.Cluster.Name,
			"schedulers", len(c.Cluster.Schedulers), "applications", len(c.Applications))
	})
	return m, nil
}

func (m *managed) run(ctx context.Context) error {
	topic, err := m.s.ps.Join(dynclient.Topic)
	if err != nil {
		return fmt.Errorf("join %s: %w", dynclient.Topic, err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		return err
	}
	defer sub.Cancel()
	go func() { _ = m.dyn.Follow(ctx, sub, dynclient.SchedulerVersion) }()
	go m.keepalive(ctx)
	return m.dyn.Run(ctx)
}

func (m *managed) keepalive(ctx context.Context) {
	t := time.NewTicker(m.s.cfg.Manager.KeepaliveInterval)
	defer t.Stop()
	failing := false
	for {
		err := dynclient.Keepalive(ctx, m.hc, m.base, dynclient.SchedulerKeepalivePath, m.token, m.request())
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			m.s.log.Warn("scheduler keepalive to the manager failed; serving on, retrying", "err", err)
			failing = true
		case err == nil && failing:
			m.s.log.Info("scheduler keepalive to the manager works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *managed) request() dynclient.KeepaliveRequest {
	hostname, _ := os.Hostname()
	req := dynclient.KeepaliveRequest{ID: m.s.host.ID().String(), Cluster: m.s.cfg.Manager.Cluster, Hostname: hostname}
	for _, a := range m.s.host.Addrs() {
		if ip, err := manet.ToIP(a); err == nil && req.IP == "" && !ip.IsUnspecified() {
			req.IP = ip.String()
		}
	}
	addrs := m.s.Addrs()
	if len(addrs) > 16 {
		addrs = addrs[:16]
	}
	req.Addrs = addrs
	sum := m.s.svc.Summary(dynclient.MaxSummaryHosts)
	req.Summary = &sum
	return req
}

// Summary reports the swarm as the manager's keepalive carries it:
// cumulative peer and back-to-source bytes, counts, and up to maxHosts hosts.
func (s *Scheduler) Summary(maxHosts int) dynclient.SchedulerSummary { return s.svc.Summary(maxHosts) }

// ManagerConfig returns the manager's last good answer and whether it came
// from the disk cache (false, error: no manager or no answer yet).
func (s *Scheduler) ManagerConfig() (dynclient.SchedulerConfig, bool, error) {
	if s.mgr == nil {
		return dynclient.SchedulerConfig{}, false, dynclient.ErrNoConfig
	}
	return s.mgr.dyn.Current()
}

// SetApplications hands the manager's application priority rules to the
// schedule service: a download whose request names no priority gets the
// one of its application (by name) or of the first rule with a URL pattern
// that matches. A rule set that does not compile is refused whole.
func (s *Scheduler) SetApplications(apps []dynclient.Application) error {
	names := make([]string, len(apps))
	patterns := make([][]string, len(apps))
	prios := make([]int, len(apps))
	for i, a := range apps {
		names[i], patterns[i], prios[i] = a.Name, a.URLPatterns, a.Priority
	}
	rules, err := service.CompileAppRules(names, patterns, prios)
	if err != nil {
		return err
	}
	s.svc.SetAppRules(rules)
	return nil
}
