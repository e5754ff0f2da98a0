package node

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/dragonfly-p2p/df/protocol/dynclient"
)

// DynconfigCacheFile is where a managed node keeps the manager's last good
// answer (in its data directory): it runs on it while the manager is down.
const DynconfigCacheFile = "dynconfig.json"

// managed is a node's link to the manager: dynamic config (schedulers and
// seed peers, pulled and pushed, cached on disk) and, on seed peers, the
// keepalive that registers them.
type managed struct {
	n       *Node
	base    string
	token   string
	hc      *http.Client
	dyn     *dynclient.Client[dynclient.NodeConfig]
	cluster atomic.Pointer[string] // best cluster of the last answer
	version atomic.Pointer[string] // version last applied
}

// ReadToken reads a manager token file (trailing whitespace ignored).
func ReadToken(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("manager token: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("manager token file %s: want one token on one line", path)
	}
	return tok, nil
}

func newManaged(n *Node) (*managed, error) {
	tok, err := ReadToken(n.cfg.Manager.TokenFile)
	if err != nil {
		return nil, err
	}
	m := &managed{n: n, base: strings.TrimSuffix(n.cfg.Manager.URL, "/"), token: tok, hc: &http.Client{Timeout: 10 * time.Second}}
	hostname, _ := os.Hostname()
	q := url.Values{}
	q.Set("hostname", hostname)
	q.Set("ip", hostIP(n.host.Addrs()))
	q.Set("idc", n.cfg.Host.IDC)
	q.Set("location", n.cfg.Host.Location)
	m.dyn = dynclient.New[dynclient.NodeConfig](m.base+dynclient.NodeConfigPath+"?"+q.Encode(), tok,
		filepath.Join(n.cfg.DataDir, DynconfigCacheFile),
		dynclient.WithHTTPClient(m.hc), dynclient.WithInterval(n.cfg.Manager.PullInterval),
		dynclient.WithLogger(n.log.With("component", "dynclient")))
	m.dyn.OnUpdate(m.apply)
	return m, nil
}

// hostIP is the first non-loopback IP among addrs, else the first IP.
func hostIP(addrs []ma.Multiaddr) string {
	first := ""
	for _, a := range addrs {
		ip, err := manet.ToIP(a)
		if err != nil {
			continue
		}
		if !ip.IsLoopback() && !ip.IsUnspecified() {
			return ip.String()
		}
		if first == "" {
			first = ip.String()
		}
	}
	return first
}

func instancePeers(in []dynclient.Instance, self peer.ID) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, i := range in {
		id, err := peer.Decode(i.ID)
		if err != nil || id == self {
			continue
		}
		pi := peer.AddrInfo{ID: id}
		for _, s := range i.Addrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				continue
			}
			if ai, err := peer.AddrInfoFromP2pAddr(a); err == nil {
				if ai.ID == id {
					pi.Addrs = append(pi.Addrs, ai.Addrs...)
				}
				continue
			}
			pi.Addrs = append(pi.Addrs, a)
		}
		out = append(out, pi)
	}
	return out
}

// apply installs a config: the best cluster's schedulers become the ring
// (the static list stays when the manager lists none), its seed peers are
// dialled (they are good bootstrap peers).
func (m *managed) apply(c dynclient.NodeConfig) {
	n := m.n
	if len(c.Clusters) == 0 {
		return
	}
	best := c.Clusters[0]
	m.cluster.Store(&best.Name)
	if prev := m.version.Swap(&c.Version); prev != nil && *prev == c.Version {
		return // every pull delivers the config; only a new version changes anything
	}
	scheds := instancePeers(best.Schedulers, n.host.ID())
	if len(scheds) == 0 {
		scheds, _ = n.cfg.SchedulerPeers() // validated at start
	}
	if n.sched != nil {
		n.sched.SetSchedulers(scheds)
	}
	n.log.Info("manager config applied", "version", c.Version, "cluster", best.Name,
		"schedulers", len(scheds), "seed_peers", len(best.SeedPeers))
	for _, pi := range instancePeers(best.SeedPeers, n.host.ID()) {
		go func() {
			ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
			defer cancel()
			if err := n.gated.Connect(ctx, pi); err != nil {
				n.log.Debug("dialling a seed peer from the manager's list", "peer", pi.ID, "err", err)
			}
		}()
	}
}

// run pulls (and follows pushes on the config topic) until ctx ends; a
// seed peer also sends keepalives.
func (m *managed) run(ctx context.Context) error {
	topic, err := m.n.ps.Join(dynclient.Topic)
	if err != nil {
		return fmt.Errorf("join %s: %w", dynclient.Topic, err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		return err
	}
	defer sub.Cancel()
	go func() { _ = m.dyn.Follow(ctx, sub, dynclient.NodeVersion) }()
	if m.n.cfg.Seed {
		go m.keepalive(ctx)
	}
	return m.dyn.Run(ctx)
}

func (m *managed) keepalive(ctx context.Context) {
	t := time.NewTicker(m.n.cfg.Manager.KeepaliveInterval)
	defer t.Stop()
	failing := false
	for {
		if c := m.cluster.Load(); c != nil {
			err := dynclient.Keepalive(ctx, m.hc, m.base, dynclient.SeedPeerKeepalivePath, m.token, m.keepaliveRequest(*c))
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				m.n.log.Warn("seed peer keepalive to the manager failed; serving on, retrying", "err", err)
				failing = true
			case err == nil && failing:
				m.n.log.Info("seed peer keepalive to the manager works again")
				failing = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *managed) keepaliveRequest(cluster string) dynclient.KeepaliveRequest {
	n := m.n
	hostname, _ := os.Hostname()
	req := dynclient.KeepaliveRequest{ID: n.host.ID().String(), Cluster: cluster, Hostname: hostname,
		IP: hostIP(n.host.Addrs()), IDC: n.cfg.Host.IDC, Location: n.cfg.Host.Location}
	for _, a := range n.ID().Addrs {
		if len(req.Addrs) == 16 {
			break
		}
		req.Addrs = append(req.Addrs, a)
	}
	return req
}

// Schedulers returns the schedulers on this node's ring (from the manager
// when it follows one, else the static list); nil without any.
func (n *Node) Schedulers() []peer.ID {
	if n.sched == nil {
		return nil
	}
	return n.sched.Schedulers()
}
