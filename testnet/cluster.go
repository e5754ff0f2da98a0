package testnet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/source"
	"github.com/dragonfly-p2p/df/protocol/p2p"
	"github.com/dragonfly-p2p/df/testnet/shape"
)

// Cluster is a set of in-process nodes sharing one cluster secret.
type Cluster struct {
	dir    string
	secret []byte
	opts   ClusterOptions

	mu     sync.Mutex
	nodes  []*Node
	scheds []*Scheduler
	mgr    node.ManagerConfig // nodes added from now on follow this manager
}

// UseManager makes nodes added from now on follow the manager at url with
// the token in tokenFile (pulling every second, seed keepalives every second).
func (c *Cluster) UseManager(url, tokenFile string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mgr = node.ManagerConfig{URL: url, TokenFile: tokenFile, PullInterval: time.Second, KeepaliveInterval: time.Second}
}

// Node is one running in-process node.
type Node struct {
	*node.Node
	Name   string
	Dir    string
	cfg    node.Config
	index  int
	cancel context.CancelFunc
	done   chan error
}

// ClusterOptions are set by Option functions.
type ClusterOptions struct {
	log        *slog.Logger
	configure  func(i int, cfg *node.Config)
	nodeOpts   func(i int) []node.Option
	transport  string
	sockets    bool
	schedulers int
	links      func(i int) *shape.Link
}

// Option configures a cluster.
type Option func(*ClusterOptions)

// WithLogger sets the nodes' logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *ClusterOptions) { o.log = l } }

// WithConfig edits node i's configuration before it starts.
func WithConfig(f func(i int, cfg *node.Config)) Option {
	return func(o *ClusterOptions) { o.configure = f }
}

// WithNodeOptions adds node options for node i.
func WithNodeOptions(f func(i int) []node.Option) Option {
	return func(o *ClusterOptions) { o.nodeOpts = f }
}

// WithAPISockets gives every node its local API socket at <dir>/dfnode.sock
// (default: none; in-process nodes are driven through Go calls).
func WithAPISockets() Option { return func(o *ClusterOptions) { o.sockets = true } }

// WithLinks shapes node i's link (QUIC only; nil: not shaped). The same
// link survives Restart.
func WithLinks(f func(i int) *shape.Link) Option { return func(o *ClusterOptions) { o.links = f } }

// WithTCP makes nodes listen on TCP only (default: QUIC only).
func WithTCP() Option { return func(o *ClusterOptions) { o.transport = "tcp" } }

// Limits are resource-manager limits for many hosts on one loopback
// address: libp2p's defaults scaled as if each host had 4 GiB and plenty of
// file descriptors. The daemon keeps its own defaults.
func Limits() rcmgr.ConcreteLimitConfig {
	cfg := rcmgr.DefaultLimits
	return cfg.Scale(4<<30, 1<<16)
}

// Start creates dir and starts n nodes; node 0 is everyone's bootstrap peer.
func Start(ctx context.Context, dir string, n int, opts ...Option) (*Cluster, error) {
	o := ClusterOptions{log: slog.New(slog.DiscardHandler), transport: "quic"}
	for _, opt := range opts {
		opt(&o)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, secret: secret, opts: o}
	for i := range o.schedulers {
		if _, err := c.startScheduler(ctx, i); err != nil {
			c.Close()
			return nil, fmt.Errorf("scheduler %d: %w", i, err)
		}
	}
	for i := 0; i < n; i++ {
		if _, err := c.AddNode(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
	}
	return c, nil
}

// Nodes returns the running nodes.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// Node returns node i.
func (c *Cluster) Node(i int) *Node { return c.Nodes()[i] }

// Secret returns the cluster secret.
func (c *Cluster) Secret() []byte { return c.secret }

// AddNode starts one more node bootstrapped from node 0.
func (c *Cluster) AddNode(ctx context.Context) (*Node, error) {
	c.mu.Lock()
	i := len(c.nodes)
	var boot []string
	if i > 0 {
		boot = FullAddrs(c.nodes[0].AddrInfo())
	}
	mgr := c.mgr
	c.mu.Unlock()
	name := fmt.Sprintf("node%02d", i)
	dir := filepath.Join(c.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := node.DefaultConfig()
	cfg.DataDir = dir
	cfg.Bootstrap = boot
	cfg.Source.AllowedNetworks = []string{"127.0.0.0/8", "::1/128"}
	cfg.Storage.GCInterval = time.Minute
	cfg.Schedulers = c.SchedulerAddrs()
	if mgr.URL != "" {
		cfg.Manager = mgr
	}
	if c.opts.transport == "tcp" {
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	} else {
		cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	if c.opts.configure != nil {
		c.opts.configure(i, &cfg)
	}
	tn, err := c.start(ctx, i, name, cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, tn)
	c.mu.Unlock()
	return tn, nil
}

func (c *Cluster) start(ctx context.Context, i int, name string, cfg node.Config) (*Node, error) {
	nopts := []node.Option{
		node.WithSecret(c.secret),
		node.WithLogger(c.opts.log.With("node", name)),
		node.WithHostOptions(p2p.WithLimits(Limits()), p2p.WithConnWatermarks(2048, 4096)),
	}
	if !c.opts.sockets {
		nopts = append(nopts, node.WithoutAPISocket())
	}
	if c.opts.links != nil {
		if l := c.opts.links(i); l != nil {
			nopts = append(nopts, node.WithHostOptions(p2p.WithListenUDP(l.ListenUDP)),
				// Origin bytes come down the same link as the peers'.
				node.WithSourceOptions(source.WithConnWrapper(l.Conn)))
		}
	}
	if c.opts.nodeOpts != nil {
		nopts = append(nopts, c.opts.nodeOpts(i)...)
	}
	nd, err := node.New(cfg, nopts...)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	tn := &Node{Node: nd, Name: name, Dir: cfg.DataDir, cfg: cfg, index: i, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- nd.Run(rctx) }()
	return tn, nil
}

// Restart stops node i and starts it again on the same data directory
// (same identity, same store), bootstrapping from another running node.
func (c *Cluster) Restart(ctx context.Context, i int) (*Node, error) {
	old := c.Node(i)
	if err := old.Stop(); err != nil {
		return nil, err
	}
	cfg := old.cfg
	for j, n := range c.Nodes() {
		if j != i {
			cfg.Bootstrap = FullAddrs(n.AddrInfo())
			break
		}
	}
	tn, err := c.start(ctx, i, old.Name, cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nodes[i] = tn
	c.mu.Unlock()
	return tn, nil
}

// Socket is the node's API socket path (with WithAPISockets).
func (n *Node) Socket() string { return filepath.Join(n.Dir, "dfnode.sock") }

// Stop stops a node and waits for it to shut down.
func (n *Node) Stop() error {
	n.cancel()
	err := <-n.done
	n.done <- err // Stop is idempotent
	return err
}

// Close stops every node.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.Nodes() {
		if err := n.Stop(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
		}
	}
	for _, s := range c.Schedulers() {
		if err := s.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// WaitConnected waits until every node has admitted at least min(k, n-1)
// members and has them in its DHT routing table.
func (c *Cluster) WaitConnected(ctx context.Context, k int) error {
	nodes := c.Nodes()
	want := min(k, len(nodes)-1)
	err := WaitFor(ctx, 20*time.Millisecond, func() bool {
		for _, n := range nodes {
			if len(n.Admission().Members()) < want || n.Discovery().DHT().RoutingTable().Size() < want {
				return false
			}
		}
		return true
	})
	if err != nil {
		var state []string
		for _, n := range nodes {
			state = append(state, fmt.Sprintf("%s: %d members, %d in the routing table, %d connected",
				n.Name, len(n.Admission().Members()), n.Discovery().DHT().RoutingTable().Size(), len(n.Host().Network().Peers())))
		}
		return fmt.Errorf("cluster not connected (want %d each): %s: %w", want, strings.Join(state, "; "), err)
	}
	return nil
}

// FullAddrs returns ai's addresses with /p2p/<peer ID>, usable as --bootstrap.
func FullAddrs(ai peer.AddrInfo) []string {
	addrs, err := peer.AddrInfoToP2pAddrs(&ai)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}
