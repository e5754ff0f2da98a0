package p2p

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/prometheus/client_golang/prometheus"

	dfproto "github.com/dragonfly-p2p/df/protocol"
)

// DefaultListen listens on every interface, QUIC and TCP, on port 4001.
var DefaultListen = []string{
	"/ip4/0.0.0.0/udp/4001/quic-v1",
	"/ip4/0.0.0.0/tcp/4001",
	"/ip6/::/udp/4001/quic-v1",
	"/ip6/::/tcp/4001",
}

type options struct {
	listen     []string
	limits     *rcmgr.ConcreteLimitConfig
	rcmgrOpts  []rcmgr.Option
	lowWater   int
	highWater  int
	registerer prometheus.Registerer
	listenUDP  func(network string, laddr *net.UDPAddr) (net.PacketConn, error)
	userAgent  string
}

// Option configures NewHost.
type Option func(*options)

// WithListen sets the listen multiaddrs (default DefaultListen).
func WithListen(addrs ...string) Option { return func(o *options) { o.listen = addrs } }

// WithLimits replaces the resource-manager limits. testnet uses it: many
// hosts on one loopback address need larger per-IP and system limits than a
// daemon on its own machine.
func WithLimits(l rcmgr.ConcreteLimitConfig, opts ...rcmgr.Option) Option {
	return func(o *options) { o.limits, o.rcmgrOpts = &l, opts }
}

// WithConnWatermarks sets the connection manager's low and high watermarks.
func WithConnWatermarks(low, high int) Option {
	return func(o *options) { o.lowWater, o.highWater = low, high }
}

// WithRegisterer exports libp2p's metrics to reg (default: disabled).
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.registerer = reg }
}

// WithListenUDP replaces how QUIC opens its UDP sockets; testnet wraps them
// to shape bandwidth, latency and loss in userspace.
func WithListenUDP(f func(network string, laddr *net.UDPAddr) (net.PacketConn, error)) Option {
	return func(o *options) { o.listenUDP = f }
}

// WithUserAgent sets the identify agent version.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// DefaultLimits are the daemon's resource-manager limits: libp2p's scaled
// defaults plus explicit budgets for the dragonfly protocols.
func DefaultLimits() rcmgr.ConcreteLimitConfig {
	cfg := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&cfg)
	add := func(p protocol.ID, streams, peerStreams int, mem int64) {
		cfg.AddProtocolLimit(p,
			rcmgr.BaseLimit{StreamsInbound: streams, StreamsOutbound: streams, Streams: 2 * streams, Memory: mem},
			rcmgr.BaseLimitIncrease{StreamsInbound: streams / 4, StreamsOutbound: streams / 4, Streams: streams / 2, Memory: mem / 4})
		cfg.AddProtocolPeerLimit(p,
			rcmgr.BaseLimit{StreamsInbound: peerStreams, StreamsOutbound: peerStreams, Streams: 2 * peerStreams, Memory: mem / 8},
			rcmgr.BaseLimitIncrease{})
	}
	add(dfproto.PieceID, 1024, 64, 256<<20)
	add(dfproto.PiecesSyncID, 4096, 512, 64<<20)
	add(dfproto.MemberID, 512, 4, 8<<20)
	return cfg.AutoScale()
}

// NewHost creates the libp2p host of a node whose data directory is dataDir
// (the identity key lives there). gater is required: admission blocks peers
// through it.
func NewHost(dataDir string, gater *Gater, opts ...Option) (host.Host, error) {
	o := options{listen: DefaultListen, lowWater: 512, highWater: 1024, userAgent: "dfnode"}
	for _, opt := range opts {
		opt(&o)
	}
	if gater == nil {
		return nil, fmt.Errorf("p2p: a connection gater is required")
	}
	key, err := LoadOrCreateIdentity(filepath.Join(dataDir, IdentityFile))
	if err != nil {
		return nil, err
	}
	limits := DefaultLimits()
	if o.limits != nil {
		limits = *o.limits
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits), o.rcmgrOpts...)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(o.lowWater, o.highWater, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	lopts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(o.listen...),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(gater),
		libp2p.DisableRelay(),
		libp2p.UserAgent(o.userAgent),
	}
	if o.registerer != nil {
		lopts = append(lopts, libp2p.PrometheusRegisterer(o.registerer))
	} else {
		lopts = append(lopts, libp2p.DisableMetrics())
	}
	if o.listenUDP != nil {
		lopts = append(lopts, libp2p.QUICReuse(quicreuse.NewConnManager, quicreuse.OverrideListenUDP(o.listenUDP)))
	}
	h, err := libp2p.New(lopts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	return h, nil
}

// Conns reports the number of open connections (for metrics).
func Conns(h host.Host) int { return len(h.Network().Conns()) }
