// Package p2pexec carries the manager's jobs out over libp2p. The manager
// joins the cluster as an admitted member (its own libp2p host, cluster
// admission with the cluster secret, gossipsub) and asks a seed peer of
// each chosen cluster, over the preheat protocol (/dragonfly/preheat/1.0.0),
// to download a blob through its normal download conductor, to say where a
// task is cached, or to delete it cluster-wide. The seed peers and
// schedulers it talks to are the active instances the manager learned from
// keepalives; it stays connected to them so that its gossipsub
// announcements (config versions) reach the cluster.
package p2pexec

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dragonfly-p2p/df/manager/jobs"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/admission"
	"github.com/dragonfly-p2p/df/protocol/p2p"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/protocol/preheatclient"
)

// ErrNoSeedPeer: the cluster has no active seed peer the manager can reach.
var ErrNoSeedPeer = errors.New("no reachable seed peer in the cluster")

// Peer is a seed peer or scheduler as the directory lists it.
type Peer struct {
	ID    string
	Addrs []string // multiaddrs
}

// Directory lists the active instances the manager knows from keepalives.
type Directory interface {
	// SeedPeers returns the active seed peers of cluster.
	SeedPeers(ctx context.Context, cluster string) ([]Peer, error)
	// Members returns every active seed peer and scheduler (all clusters).
	Members(ctx context.Context) ([]Peer, error)
}

// Executor implements jobs.Executor over libp2p.
type Executor struct {
	raw   host.Host
	h     host.Host // admission-gated
	adm   *admission.Admission
	ps    *pubsub.PubSub
	dir   Directory
	log   *slog.Logger
	every time.Duration
}

var _ jobs.Executor = (*Executor)(nil)

type options struct {
	log      *slog.Logger
	reg      prometheus.Registerer
	hostOpts []p2p.Option
	every    time.Duration
}

// Option configures New.
type Option func(*options)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer exports libp2p and admission metrics.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithHostOptions adds libp2p host options (listen addresses, testnet limits).
func WithHostOptions(opts ...p2p.Option) Option {
	return func(o *options) { o.hostOpts = append(o.hostOpts, opts...) }
}

// WithConnectInterval sets how often Run connects to the directory's members (default 15 s).
func WithConnectInterval(d time.Duration) Option { return func(o *options) { o.every = d } }

// New starts the manager's libp2p host (identity kept in dataDir), cluster
// admission with secret, and gossipsub. Close it with Run's end or Close.
func New(dataDir string, secret []byte, dir Directory, opts ...Option) (*Executor, error) {
	o := options{log: slog.New(slog.DiscardHandler), every: 15 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	gater := p2p.NewGater()
	hopts := append([]p2p.Option{
		p2p.WithListen("/ip4/0.0.0.0/udp/0/quic-v1", "/ip4/0.0.0.0/tcp/0"),
		p2p.WithUserAgent("dragonfly-manager"),
		p2p.WithRegisterer(o.reg),
	}, o.hostOpts...)
	raw, err := p2p.NewHost(dataDir, gater, hopts...)
	if err != nil {
		return nil, fmt.Errorf("p2pexec: %w", err)
	}
	aopts := []admission.Option{admission.WithLogger(o.log.With("component", "admission"))}
	if o.reg != nil {
		aopts = append(aopts, admission.WithRegisterer(o.reg))
	}
	adm, err := admission.New(raw, secret, gater, aopts...)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("p2pexec: %w", err)
	}
	e := &Executor{raw: raw, h: adm.GatedHost(raw), adm: adm, dir: dir, log: o.log, every: o.every}
	// Flood publishing: the manager does not subscribe to the config
	// topic, so it is in nobody's mesh; it sends its announcements to every
	// connected subscriber, which forward them through their meshes.
	e.ps, err = pubsub.NewGossipSub(context.Background(), e.h,
		pubsub.WithFloodPublish(true),
		pubsub.WithMessageSigning(true),
		pubsub.WithStrictSignatureVerification(true),
		pubsub.WithMaxMessageSize(1<<20))
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("p2pexec: gossipsub: %w", err)
	}
	return e, nil
}

// PubSub returns the gossipsub router (manager.WithPubSub).
func (e *Executor) PubSub() *pubsub.PubSub { return e.ps }

// Host returns the raw libp2p host.
func (e *Executor) Host() host.Host { return e.raw }

// Close stops admission and closes the host.
func (e *Executor) Close() error {
	e.adm.Close()
	return e.raw.Close()
}

// Run keeps the manager connected to the directory's members until ctx
// ends, then closes the host.
func (e *Executor) Run(ctx context.Context) error {
	defer e.Close()
	t := time.NewTicker(e.every)
	defer t.Stop()
	for {
		e.connectMembers(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (e *Executor) connectMembers(ctx context.Context) {
	ms, err := e.dir.Members(ctx)
	if err != nil {
		e.log.Warn("p2pexec: list cluster members", "err", err)
		return
	}
	for _, m := range ms {
		pi, err := addrInfo(m)
		if err != nil || e.raw.Network().Connectedness(pi.ID) == network.Connected {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := e.connect(cctx, pi); err != nil {
			e.log.Debug("p2pexec: connect", "peer", pi.ID, "err", err)
		}
		cancel()
	}
}

func addrInfo(p Peer) (peer.AddrInfo, error) {
	id, err := peer.Decode(p.ID)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("peer ID %q: %w", p.ID, err)
	}
	pi := peer.AddrInfo{ID: id}
	for _, a := range p.Addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			continue
		}
		// Addresses may carry the /p2p/<id> suffix.
		if ai, err := peer.AddrInfoFromP2pAddr(m); err == nil {
			if ai.ID == id {
				pi.Addrs = append(pi.Addrs, ai.Addrs...)
			}
			continue
		}
		pi.Addrs = append(pi.Addrs, m)
	}
	return pi, nil
}

func (e *Executor) connect(ctx context.Context, pi peer.AddrInfo) error {
	if len(pi.Addrs) > 0 {
		e.raw.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.RecentlyConnectedAddrTTL)
	}
	return e.h.Connect(ctx, pi)
}

// seeds returns the cluster's seed peers ordered by rendezvous hashing on
// key, so the same blob goes to the same seed peer while it is up.
func (e *Executor) seeds(ctx context.Context, cluster, key string) ([]peer.AddrInfo, error) {
	ps, err := e.dir.SeedPeers(ctx, cluster)
	if err != nil {
		return nil, err
	}
	type ranked struct {
		pi    peer.AddrInfo
		score uint64
	}
	var rs []ranked
	for _, p := range ps {
		pi, err := addrInfo(p)
		if err != nil {
			continue
		}
		sum := sha256.Sum256([]byte(key + "\x00" + pi.ID.String()))
		rs = append(rs, ranked{pi, binary.BigEndian.Uint64(sum[:8])})
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("cluster %s: %w (is a dfnode --seed running with --manager?)", cluster, ErrNoSeedPeer)
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if a.score > b.score {
			return -1
		}
		if a.score < b.score {
			return 1
		}
		return 0
	})
	out := make([]peer.AddrInfo, len(rs))
	for i, r := range rs {
		out[i] = r.pi
	}
	return out, nil
}

// call sends req to the first seed peer of cluster that can be reached.
// Only connection failures move on to the next seed peer: a seed peer that
// answered (even FAILED) decides.
func (e *Executor) call(ctx context.Context, cluster, key string, req *pb.PreheatRequest, progress func(protocol.PreheatProgress)) (peer.ID, protocol.PreheatProgress, error) {
	seeds, err := e.seeds(ctx, cluster, key)
	if err != nil {
		return "", protocol.PreheatProgress{}, err
	}
	var errs []error
	for _, pi := range seeds {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := e.connect(cctx, pi)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("seed peer %s: %w", pi.ID, err))
			continue
		}
		final, err := preheatclient.Do(ctx, e.h, pi.ID, req, progress)
		if err != nil && !errors.Is(err, preheatclient.ErrFailed) && ctx.Err() == nil && !started(final) {
			errs = append(errs, fmt.Errorf("seed peer %s: %w", pi.ID, err))
			continue
		}
		return pi.ID, final, err
	}
	return "", protocol.PreheatProgress{}, fmt.Errorf("cluster %s: %w: %w", cluster, ErrNoSeedPeer, errors.Join(errs...))
}

func started(p protocol.PreheatProgress) bool {
	return p.State != pb.PreheatState_PREHEAT_STATE_UNSPECIFIED
}

// Preheat implements jobs.Executor: a seed peer of cluster downloads b
// (a content task when its digest is known) and reports progress.
func (e *Executor) Preheat(ctx context.Context, cluster string, b jobs.Blob, progress func(done int64)) error {
	req := &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: b.URL, Digest: b.Digest}
	names := make([]string, 0, len(b.Headers))
	for k := range b.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		req.Headers = append(req.Headers, &pb.PreheatHeader{Name: k, Value: b.Headers[k]})
	}
	key := b.Digest
	if key == "" {
		key = b.URL
	}
	p, final, err := e.call(ctx, cluster, key, req, func(pr protocol.PreheatProgress) {
		if progress != nil && pr.State == pb.PreheatState_PREHEAT_STATE_RUNNING {
			progress(pr.BytesDone)
		}
	})
	if err != nil {
		return err
	}
	if progress != nil { // the last RUNNING frame may be a piece or more short of the end
		progress(max(final.BytesDone, final.Total))
	}
	e.log.Info("p2pexec: preheated", "cluster", cluster, "seed", p, "digest", b.Digest)
	return nil
}

func taskRequest(op pb.PreheatOp, a jobs.TaskArgs) (*pb.PreheatRequest, string, error) {
	req := &pb.PreheatRequest{Op: op, Url: a.URL}
	key := a.URL
	if a.TaskID != "" {
		// Stat and delete need only the task ID: any task ID travels in
		// the digest field.
		id, err := protocol.ParseTaskID(strings.TrimPrefix(a.TaskID, "sha256:"))
		if err != nil {
			return nil, "", fmt.Errorf("%w: %w", jobs.ErrInvalidArgs, err)
		}
		req.Digest, key = protocol.Digest(id).String(), id.String()
	}
	return req, key, nil
}

// TaskLocation is the result of a get-task job for one cluster.
type TaskLocation struct {
	TaskID        string   `json:"task_id"`
	AskedSeedPeer string   `json:"asked_seed_peer"`
	SeedPeerHolds bool     `json:"seed_peer_holds"`
	CompletePeers int      `json:"complete_peers"`
	Peers         []string `json:"peers"`
}

// GetTask implements jobs.Executor: a seed peer says where the task is cached.
func (e *Executor) GetTask(ctx context.Context, cluster string, a jobs.TaskArgs) (any, error) {
	req, key, err := taskRequest(pb.PreheatOp_PREHEAT_OP_STAT, a)
	if err != nil {
		return nil, err
	}
	p, final, err := e.call(ctx, cluster, key, req, nil)
	if err != nil {
		return nil, err
	}
	loc := TaskLocation{AskedSeedPeer: p.String(), SeedPeerHolds: final.Local, CompletePeers: int(final.CompletePeers), Peers: final.Peers}
	if final.HasTaskID {
		loc.TaskID = final.TaskID.String()
	}
	if loc.Peers == nil {
		loc.Peers = []string{}
	}
	return loc, nil
}

// DeleteTask implements jobs.Executor: a seed peer deletes the task
// cluster-wide (through its scheduler; without one, only its own copy).
func (e *Executor) DeleteTask(ctx context.Context, cluster string, a jobs.TaskArgs) error {
	req, key, err := taskRequest(pb.PreheatOp_PREHEAT_OP_DELETE, a)
	if err != nil {
		return err
	}
	_, _, err = e.call(ctx, cluster, key, req, nil)
	return err
}
