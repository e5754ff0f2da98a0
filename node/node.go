// Package node is the dfnode daemon: it wires the libp2p host, cluster
// admission, the DHT and gossipsub (discovery), the piece store, the upload
// service, the download conductor, the back-to-source client and the local
// API into one Node with a Run(ctx) lifecycle.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/node/discovery"
	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/node/mirror"
	"github.com/dragonfly-p2p/df/node/preheat"
	"github.com/dragonfly-p2p/df/node/probe"
	"github.com/dragonfly-p2p/df/node/ratelimit"
	"github.com/dragonfly-p2p/df/node/schedclient"
	"github.com/dragonfly-p2p/df/node/source"
	"github.com/dragonfly-p2p/df/node/upload"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/admission"
	"github.com/dragonfly-p2p/df/protocol/p2p"
	"github.com/dragonfly-p2p/df/storage/disk"
)

// ErrUnsafeDataDir: the data directory is writable by others or owned by
// another user.
var ErrUnsafeDataDir = errors.New("unsafe data directory")

// Node is one dfnode.
type Node struct {
	cfg    Config
	log    *slog.Logger
	reg    prometheus.Registerer
	ctx    context.Context // lives until Close
	cancel context.CancelFunc

	host   host.Host // raw host: only admission uses it directly
	gated  host.Host // every service goes through admission
	gater  *p2p.Gater
	adm    *admission.Admission
	ps     *pubsub.PubSub
	disc   *discovery.Discovery
	store  *disk.Store
	up     *upload.Server
	dl     *download.Downloader
	origin *source.Client
	apiSrv *api.Server
	sched  *schedclient.Client // nil without schedulers and manager
	mgr    *managed            // nil without a manager
	mirror *mirror.Mirror      // nil unless enabled
	mirLn  net.Listener
	upRate *rateMeter

	closeOnce sync.Once
}

type options struct {
	log         *slog.Logger
	reg         prometheus.Registerer
	secret      []byte
	hostOpts    []p2p.Option
	discOpts    []discovery.Option
	sourceOpts  []source.Option
	storeOpts   []disk.Option
	noAPISocket bool
	uploadWrap  func(upload.Store) upload.Store
	dlConfig    func(*download.Config)
}

// Option configures New.
type Option func(*options)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer exports metrics.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithSecret gives the cluster secret directly instead of reading the
// configured file (testnet uses it).
func WithSecret(s []byte) Option { return func(o *options) { o.secret = s } }

// WithHostOptions adds libp2p host options (testnet: limits, shaped links).
func WithHostOptions(opts ...p2p.Option) Option {
	return func(o *options) { o.hostOpts = append(o.hostOpts, opts...) }
}

// WithDiscoveryOptions adds discovery options.
func WithDiscoveryOptions(opts ...discovery.Option) Option {
	return func(o *options) { o.discOpts = append(o.discOpts, opts...) }
}

// WithSourceOptions adds back-to-source client options.
func WithSourceOptions(opts ...source.Option) Option {
	return func(o *options) { o.sourceOpts = append(o.sourceOpts, opts...) }
}

// WithStoreOptions adds piece-store options.
func WithStoreOptions(opts ...disk.Option) Option {
	return func(o *options) { o.storeOpts = append(o.storeOpts, opts...) }
}

// WithUploadStore wraps the store the upload service reads from. testnet
// uses it to make a peer lie or stall; never use it in production.
func WithUploadStore(wrap func(upload.Store) upload.Store) Option {
	return func(o *options) { o.uploadWrap = wrap }
}

// WithDownloadConfig edits the conductor's configuration (tests shorten
// timeouts with it).
func WithDownloadConfig(f func(*download.Config)) Option {
	return func(o *options) { o.dlConfig = f }
}

// WithoutAPISocket skips the local API socket (in-process testnet nodes are
// driven through Go calls).
func WithoutAPISocket() Option { return func(o *options) { o.noAPISocket = true } }

// New builds a node: data directory, identity, store, host, admission,
// pubsub, DHT, services. Nothing is served until Run.
func New(cfg Config, opts ...Option) (_ *Node, err error) {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.secret == nil {
		if cfg.ClusterSecretFile == "" {
			return nil, admission.ErrWeakSecret
		}
		if o.secret, err = ReadSecret(cfg.ClusterSecretFile); err != nil {
			return nil, err
		}
	} else if cfg.ClusterSecretFile == "" {
		cfg.ClusterSecretFile = "(given)"
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: cfg, log: o.log, reg: o.reg, ctx: ctx, cancel: cancel}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	n.store, err = disk.Open(ctx, filepath.Join(cfg.DataDir, "store"), append([]disk.Option{
		disk.WithLogger(o.log.With("component", "store")),
		disk.WithQuota(int64(cfg.Storage.Quota)),
		disk.WithTaskTTL(cfg.Storage.TaskTTL),
		disk.WithIncompleteTTL(cfg.Storage.IncompleteTTL),
		disk.WithGCInterval(cfg.Storage.GCInterval),
		disk.WithEvictHook(n.evicted),
	}, o.storeOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	n.gater = p2p.NewGater()
	hostOpts := append([]p2p.Option{
		p2p.WithListen(cfg.Listen...),
		p2p.WithRegisterer(o.reg),
		p2p.WithUserAgent(userAgent(cfg.Seed)),
	}, o.hostOpts...)
	if n.host, err = p2p.NewHost(cfg.DataDir, n.gater, hostOpts...); err != nil {
		return nil, err
	}
	if n.adm, err = admission.New(n.host, o.secret, n.gater,
		admission.WithLogger(o.log.With("component", "admission")), admission.WithRegisterer(o.reg)); err != nil {
		return nil, err
	}
	n.gated = n.adm.GatedHost(n.host)

	if n.ps, err = pubsub.NewGossipSub(ctx, n.gated,
		pubsub.WithMessageSigning(true),
		pubsub.WithStrictSignatureVerification(true),
		pubsub.WithMaxMessageSize(1<<20)); err != nil {
		return nil, fmt.Errorf("gossipsub: %w", err)
	}
	boot, err := cfg.BootstrapPeers()
	if err != nil {
		return nil, err
	}
	n.disc, err = discovery.New(ctx, n.gated, n.adm, n.ps, append([]discovery.Option{
		discovery.WithLogger(o.log.With("component", "discovery")),
		discovery.WithBootstrap(boot...),
		discovery.WithReprovide(cfg.DHT.ReprovideInterval, cfg.DHT.ProvideValidity),
		discovery.WithRegisterer(o.reg),
	}, o.discOpts...)...)
	if err != nil {
		return nil, err
	}

	var allowed []netip.Prefix
	for _, s := range cfg.Source.AllowedNetworks {
		allowed = append(allowed, netip.MustParsePrefix(s)) // validated above
	}
	if n.origin, err = source.New(append([]source.Option{
		source.WithLogger(o.log.With("component", "source")),
		source.WithAllowedNetworks(allowed),
		source.WithCAFiles(cfg.Source.CAFiles...),
		source.WithUserAgent(userAgent(cfg.Seed)),
	}, o.sourceOpts...)...); err != nil {
		return nil, fmt.Errorf("source client: %w", err)
	}

	n.upRate = &rateMeter{}
	probe.Register(n.gated)
	scheds, err := cfg.SchedulerPeers()
	if err != nil {
		return nil, err
	}
	var dlOpts []download.Option
	if len(scheds) > 0 || cfg.Manager.URL != "" {
		if n.sched, err = schedclient.New(n.gated, scheds, n.hostAnnounce,
			schedclient.WithLogger(o.log.With("component", "schedclient")),
			schedclient.WithRegisterer(o.reg),
			schedclient.WithTriggerHandler(n.seedTriggered)); err != nil {
			return nil, err
		}
		dlOpts = append(dlOpts, download.WithScheduler(n.sched))
	}
	dlConfig := download.Config{
		MaxParents:        cfg.Download.MaxParents,
		StreamsPerParent:  cfg.Download.StreamsPerParent,
		SourceConcurrency: cfg.Download.SourceConcurrency,
		GatherWindow:      cfg.Download.GatherWindow,
	}
	if o.dlConfig != nil {
		o.dlConfig(&dlConfig)
	}
	up := ratelimit.New(int64(cfg.Limits.UploadRate))
	down := ratelimit.New(int64(cfg.Limits.DownloadRate))
	var upStore upload.Store = n.store
	if o.uploadWrap != nil {
		upStore = o.uploadWrap(upStore)
	}
	// Slots derived from the capacity may stretch when their uploads leave
	// the uplink idle; an explicit max-uploads is a hard limit.
	stretchTo := cfg.UplinkCapacity()
	if cfg.Limits.MaxUploads > 0 {
		stretchTo = 0
	}
	n.up = upload.New(upStore,
		upload.WithLogger(o.log.With("component", "upload")),
		upload.WithRateLimit(up),
		upload.WithMaxConcurrent(cfg.UploadSlots()),
		upload.WithUploadCapacity(stretchTo),
		upload.WithRegisterer(o.reg))
	n.up.Register(n.gated)
	var origin download.Origin = n.origin
	if cfg.Mirror.Enabled {
		// Seed-triggered downloads of registry blobs carry no credentials:
		// the wrapper does the registries' token dance for them.
		if origin, err = mirror.WrapOrigin(n.origin, cfg.Mirror.Config, mirror.WithLogger(o.log.With("component", "mirror"))); err != nil {
			return nil, fmt.Errorf("mirror: %w", err)
		}
	}
	n.dl = download.New(n.gated, n.store, n.disc, n.disc, append([]download.Option{
		download.WithLogger(o.log.With("component", "download")),
		download.WithRateLimit(down),
		download.WithOrigin(origin),
		download.WithRegisterer(o.reg),
		download.WithConfig(dlConfig),
		download.WithOriginPieces(n.up),
	}, dlOpts...)...)
	if cfg.Manager.URL != "" {
		if n.mgr, err = newManaged(n); err != nil {
			return nil, err
		}
		// Start on the last good config when there is one: the manager may be down.
		if err := n.mgr.dyn.LoadCache(); err != nil && !errors.Is(err, os.ErrNotExist) {
			n.log.Warn("ignoring an unreadable manager config cache", "err", err)
		}
	}
	if cfg.Seed {
		// Seed peers carry out the manager's preheat, stat and delete jobs
		// (docs/manager.md "Jobs"); other nodes do not serve the protocol.
		preheat.New(preheatTasks{n}, preheat.WithLogger(o.log.With("component", "preheat")),
			preheat.WithRegisterer(o.reg)).Register(n.gated)
	}
	if cfg.Mirror.Enabled {
		if n.mirror, err = mirror.New(mirror.FromDownloader(n.dl), cfg.Mirror.Config,
			mirror.WithLogger(o.log.With("component", "mirror")), mirror.WithRegisterer(o.reg)); err != nil {
			return nil, fmt.Errorf("mirror: %w", err)
		}
		if n.mirLn, err = n.mirror.Listen(); err != nil {
			return nil, err
		}
	}
	if !o.noAPISocket {
		n.apiSrv = api.NewServer(n, api.WithLogger(o.log.With("component", "api")))
	}
	return n, nil
}

func userAgent(seed bool) string {
	if seed {
		return "dfnode/seed"
	}
	return "dfnode"
}

// prepareDataDir creates dir (0700) or checks that it is not writable by
// others nor owned by another user.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s has mode %v (writable by others); run: chmod 700 %s", ErrUnsafeDataDir, dir, fi.Mode().Perm(), dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != uint32(os.Getuid()) {
		return fmt.Errorf("%w: %s is owned by uid %d, not %d; run: chown %d %s", ErrUnsafeDataDir, dir, st.Uid, os.Getuid(), os.Getuid(), dir)
	}
	return nil
}

// Run serves until ctx ends, then withdraws from the cluster and closes.
func (n *Node) Run(ctx context.Context) error {
	defer n.Close()
	n.reprovideLocal(ctx)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.disc.Run(gctx) })
	g.Go(func() error { return n.dl.Run(gctx) })
	g.Go(func() error { return n.store.Run(gctx) })
	g.Go(func() error { return n.followTaskDeletes(gctx) })
	if n.sched != nil {
		g.Go(func() error { return n.sched.Run(gctx) })
	}
	if n.mgr != nil {
		g.Go(func() error { return n.mgr.run(gctx) })
	}
	if n.mirror != nil {
		g.Go(func() error { return n.mirror.Serve(gctx, n.mirLn) })
	}
	if n.apiSrv != nil {
		ln, err := api.Listen(n.cfg.SocketPath())
		if err != nil {
			return err
		}
		defer os.Remove(n.cfg.SocketPath())
		g.Go(func() error { return n.apiSrv.Serve(gctx, ln) })
	}
	n.log.Info("dfnode running", "peer_id", n.host.ID(), "addrs", n.host.Addrs(), "seed", n.cfg.Seed, "api_socket", n.cfg.SocketPath())
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// reprovideLocal announces every complete task held from a previous run.
func (n *Node) reprovideLocal(ctx context.Context) {
	tasks, err := n.store.List(ctx)
	if err != nil {
		n.log.Warn("list tasks to re-provide", "err", err)
		return
	}
	for _, t := range tasks {
		if t.Complete {
			n.disc.Provide(t.ID)
		}
	}
}

// MirrorAddr returns the registry mirror's listen address ("" when off).
func (n *Node) MirrorAddr() string {
	if n.mirLn == nil {
		return ""
	}
	return n.mirLn.Addr().String()
}

// Close releases everything (Run calls it on the way out).
func (n *Node) Close() error {
	var errs []error
	n.closeOnce.Do(func() {
		n.cancel()
		if n.mirLn != nil {
			_ = n.mirLn.Close()
		}
		if n.adm != nil {
			n.adm.Close()
		}
		if n.host != nil {
			errs = append(errs, n.host.Close())
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
	})
	return errors.Join(errs...)
}

// Host returns the raw libp2p host (tests and testnet).
func (n *Node) Host() host.Host { return n.host }

// Downloader returns the download conductor.
// UploadQueue reports the pieces this node is uploading and the piece
// requests waiting for an upload slot.
func (n *Node) UploadQueue() (uploading, waiting int) { return n.up.InFlight(), n.up.Waiting() }

func (n *Node) Downloader() *download.Downloader { return n.dl }

// Discovery returns content routing.
func (n *Node) Discovery() *discovery.Discovery { return n.disc }

// Store returns the piece store.
func (n *Node) Store() *disk.Store { return n.store }

// Admission returns cluster admission.
func (n *Node) Admission() *admission.Admission { return n.adm }

// Ready reports whether the node serves: its host listens and, when it has
// bootstrap peers, it is connected to at least one admitted member.
func (n *Node) Ready(context.Context) error {
	if len(n.host.Addrs()) == 0 {
		return errors.New("not listening")
	}
	if len(n.cfg.Bootstrap) > 0 && len(n.adm.Members()) == 0 {
		return errors.New("no cluster member connected yet")
	}
	return nil
}

// evicted is the store's GC hook: an evicted task is no longer provided.
func (n *Node) evicted(id protocol.TaskID) {
	if n.disc != nil {
		n.disc.Withdraw(id)
	}
}
