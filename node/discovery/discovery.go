// Package discovery finds which peers hold a task: a Kademlia DHT (our own
// protocol prefix, server mode, provider records only) plus a gossipsub
// topic on which nodes withdraw records the DHT cannot delete. A node
// provides a task's CID while it can serve the task, re-provides it
// periodically, and withdraws it on delete and at shutdown.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
)

// Membership is what discovery needs from cluster admission.
type Membership interface {
	Allowed(p peer.ID) bool
	OnAdmit(f func(peer.ID))
}

// Defaults.
const (
	DefaultReprovideInterval = time.Hour
	DefaultProvideValidity   = 3 * time.Hour
)

// firstProvides bounds the first announcements of new tasks that run at
// once. They run side by side so that a task's record is not held back
// behind the others (a runtime pulls an image's layers together, and peers
// starting the same layer must find each other before the origin).
const firstProvides = 8

// Discovery is the node's content routing.
type Discovery struct {
	h      host.Host
	dht    *dht.IpfsDHT
	topic  *pubsub.Topic
	log    *slog.Logger
	boot   []peer.AddrInfo
	every  time.Duration
	queue  chan protocol.TaskID
	self   peer.ID
	events *prometheus.CounterVec
	joined chan struct{} // poked when a member is admitted, see settle

	mu        sync.Mutex
	provided  map[protocol.TaskID]bool          // tasks we provide (and re-provide)
	first     map[protocol.TaskID]chan struct{} // closed when the first provide ends
	withdrawn map[protocol.TaskID]bool          // tasks we withdrew this run
	ignored   map[ignoreKey]time.Time           // (peer, task) withdrawn by that peer, until
	left      map[peer.ID]time.Time             // peers that left, until re-admitted
	validity  time.Duration
}

type ignoreKey struct {
	p  peer.ID
	id protocol.TaskID
}

type options struct {
	log       *slog.Logger
	boot      []peer.AddrInfo
	every     time.Duration
	validity  time.Duration
	reg       prometheus.Registerer
	dhtExtras []dht.Option
}

// Option configures New.
type Option func(*options)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithBootstrap sets the peers to join through.
func WithBootstrap(peers ...peer.AddrInfo) Option { return func(o *options) { o.boot = peers } }

// WithReprovide sets the re-provide interval and how long records stay
// valid on the nodes storing them (validity should be ≥ 2 × interval).
func WithReprovide(interval, validity time.Duration) Option {
	return func(o *options) { o.every, o.validity = interval, validity }
}

// WithRegisterer exports discovery metrics.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithDHTOptions appends raw DHT options (tests tune timeouts with it).
func WithDHTOptions(opts ...dht.Option) Option {
	return func(o *options) { o.dhtExtras = append(o.dhtExtras, opts...) }
}

// New starts the DHT on h, which must be the admission-gated host (so the
// DHT and pubsub only ever exchange messages with admitted members), and
// joins the provider-events topic on ps.
func New(ctx context.Context, h host.Host, m Membership, ps *pubsub.PubSub, opts ...Option) (*Discovery, error) {
	o := options{log: slog.New(slog.DiscardHandler), every: DefaultReprovideInterval, validity: DefaultProvideValidity}
	for _, opt := range opts {
		opt(&o)
	}
	if o.validity < o.every {
		return nil, fmt.Errorf("discovery: provide validity %v shorter than the re-provide interval %v", o.validity, o.every)
	}
	dopts := append([]dht.Option{
		dht.ProtocolPrefix(protocol.DHTPrefix),
		dht.Mode(dht.ModeServer),
		dht.DisableValues(),
		dht.RoutingTableFilter(func(_ any, p peer.ID) bool { return m.Allowed(p) }),
		dht.BootstrapPeers(o.boot...),
		dht.ProviderManagerOpts(records.ProvideValidity(o.validity)),
	}, o.dhtExtras...)
	kad, err := dht.New(h, dopts...)
	if err != nil {
		return nil, fmt.Errorf("start DHT: %w", err)
	}
	topic, err := ps.Join(protocol.TopicProviders)
	if err != nil {
		kad.Close()
		return nil, fmt.Errorf("join %s: %w", protocol.TopicProviders, err)
	}
	d := &Discovery{
		h: h, dht: kad, topic: topic, log: o.log, boot: o.boot, every: o.every,
		queue:     make(chan protocol.TaskID, 4096),
		joined:    make(chan struct{}, 1),
		self:      h.ID(),
		provided:  make(map[protocol.TaskID]bool),
		first:     make(map[protocol.TaskID]chan struct{}),
		withdrawn: make(map[protocol.TaskID]bool),
		ignored:   make(map[ignoreKey]time.Time),
		left:      make(map[peer.ID]time.Time),
		validity:  o.validity,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_discovery_events_total",
			Help: "Provider operations by kind (provide, provide_error, withdraw, find, ignored_provider).",
		}, []string{"kind"}),
	}
	if o.reg != nil {
		if err := o.reg.Register(d.events); err != nil {
			kad.Close()
			return nil, err
		}
	}
	if err := ps.RegisterTopicValidator(protocol.TopicProviders, d.validate); err != nil {
		kad.Close()
		return nil, fmt.Errorf("topic validator: %w", err)
	}
	m.OnAdmit(d.readmitted)
	return d, nil
}

// DHT exposes the routing table (for peer lookups and tests).
func (d *Discovery) DHT() *dht.IpfsDHT { return d.dht }

// Run joins the cluster through the bootstrap peers, provides queued tasks,
// re-provides periodically and applies provider events, until ctx ends.
// On the way out it tells the cluster this node is leaving.
func (d *Discovery) Run(ctx context.Context) error {
	sub, err := d.topic.Subscribe()
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", protocol.TopicProviders, err)
	}
	defer sub.Cancel()
	// The DHT must not be closed while these still call into it: its
	// refresh manager's Close waits on a WaitGroup that a concurrent
	// RefreshRoutingTable adds to (a data race in kad-dht v0.42).
	var bg sync.WaitGroup
	bg.Go(func() { d.bootstrap(ctx) })
	bg.Go(func() { d.applyEvents(ctx, sub) })

	ticker := time.NewTicker(d.every)
	defer ticker.Stop()
	firsts := make(chan struct{}, firstProvides)
	for {
		select {
		case id := <-d.queue:
			select {
			case firsts <- struct{}{}:
				bg.Go(func() {
					defer func() { <-firsts }()
					d.provideNow(ctx, id)
					d.firstDone(id)
				})
			case <-ctx.Done():
			}
		case <-ticker.C:
			for _, id := range d.providedIDs() {
				if ctx.Err() != nil {
					break
				}
				d.provideNow(ctx, id)
			}
		case <-ctx.Done():
			d.leave()
			bg.Wait()
			return d.dht.Close()
		}
	}
}

// bootstrap connects to the bootstrap peers, retrying with backoff until at
// least one is reached, then refreshes the routing table.
func (d *Discovery) bootstrap(ctx context.Context) {
	if len(d.boot) == 0 {
		return
	}
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		var ok int
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, pi := range d.boot {
			if pi.ID == d.self {
				continue
			}
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := d.h.Connect(cctx, pi); err != nil {
					d.log.Debug("bootstrap peer unreachable", "peer", pi.ID, "err", err)
					return
				}
				mu.Lock()
				ok++
				mu.Unlock()
			})
		}
		wg.Wait()
		if ok > 0 {
			_ = d.dht.Bootstrap(ctx)
			d.log.Info("joined the cluster", "bootstrap_peers_reached", ok)
			// Undo a LEAVE this node may have published before a restart.
			d.publish(pb.ProviderEvent_KIND_PROVIDE)
			d.settle(ctx)
			return
		}
		d.log.Warn("no bootstrap peer reachable yet; retrying", "in", backoff)
		select {
		case <-time.After(backoff + rand.N(backoff/2)):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// smallTable is the routing-table size under which settle keeps looking
// for peers (the DHT's own low-peers threshold).
const smallTable = 10

// settle keeps the routing table filling while it is small. The join's
// self-lookup asks the bootstrap peers who they know at that moment, and
// nodes that start together each ask before the bootstrap peer has
// admitted the others: both then know only the bootstrap peer, and the
// DHT's own refresh would not ask again for minutes. So while the table
// is small, look again after 0.5 s, 1 s, 2 s, … (at most a minute
// apart), and sooner when a new member is admitted (it may know others).
func (d *Discovery) settle(ctx context.Context) {
	const first, most = 500 * time.Millisecond, time.Minute
	wait := first
	t := time.NewTimer(wait)
	defer t.Stop()
	due := time.Now().Add(wait)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.joined:
			// Sooner, never later: a stream of admissions must not
			// keep postponing the lookup.
			if time.Until(due) > first {
				wait, due = first, time.Now().Add(first)
				t.Reset(first)
			}
			continue
		case <-t.C:
		}
		if d.dht.RoutingTable().Size() < smallTable {
			select {
			case <-d.dht.RefreshRoutingTable():
			case <-ctx.Done():
				return
			}
		}
		wait = min(2*wait, most)
		due = time.Now().Add(wait)
		t.Reset(wait)
	}
}

// Provide starts providing id (now, then periodically). It does not block.
func (d *Discovery) Provide(id protocol.TaskID) {
	d.mu.Lock()
	if d.provided[id] {
		d.mu.Unlock()
		return
	}
	d.provided[id] = true
	if d.first[id] == nil {
		d.first[id] = make(chan struct{})
	}
	wasWithdrawn := d.withdrawn[id]
	delete(d.withdrawn, id)
	d.mu.Unlock()
	if wasWithdrawn {
		d.publish(pb.ProviderEvent_KIND_PROVIDE, id)
	}
	select {
	case d.queue <- id:
	default:
		d.firstDone(id)
		d.log.Warn("provide queue full; the task will be provided at the next re-provide round", "task", id.Short())
	}
}

// WaitProvided waits until the first announcement of id that Provide
// queued has ended (stored on the DHT, or failed), or ctx ends. It returns
// at once when no such announcement is pending.
func (d *Discovery) WaitProvided(ctx context.Context, id protocol.TaskID) error {
	d.mu.Lock()
	ch := d.first[id]
	d.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// firstDone ends the wait for id's first announcement.
func (d *Discovery) firstDone(id protocol.TaskID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ch := d.first[id]; ch != nil {
		close(ch)
		delete(d.first, id)
	}
}

// ProvideWait provides id like Provide, but waits (until ctx ends) for the
// first DHT announcement to finish, so that other nodes can find it as soon
// as this returns.
func (d *Discovery) ProvideWait(ctx context.Context, id protocol.TaskID) error {
	d.mu.Lock()
	wasWithdrawn := d.withdrawn[id]
	d.provided[id] = true
	delete(d.withdrawn, id)
	d.mu.Unlock()
	if wasWithdrawn {
		d.publish(pb.ProviderEvent_KIND_PROVIDE, id)
	}
	if err := d.dht.Provide(ctx, id.CID(), true); err != nil {
		d.events.WithLabelValues("provide_error").Inc()
		return fmt.Errorf("provide %s: %w", id.Short(), err)
	}
	d.events.WithLabelValues("provide").Inc()
	return nil
}

// Withdraw stops providing ids and tells the cluster to ignore this node's
// records for them.
func (d *Discovery) Withdraw(ids ...protocol.TaskID) {
	d.mu.Lock()
	for _, id := range ids {
		delete(d.provided, id)
		d.withdrawn[id] = true
	}
	d.mu.Unlock()
	for len(ids) > 0 {
		n := min(len(ids), protocol.MaxProviderEventTasks)
		d.publish(pb.ProviderEvent_KIND_WITHDRAW, ids[:n]...)
		ids = ids[n:]
	}
}

// IsProviding reports whether id is currently provided.
func (d *Discovery) IsProviding(id protocol.TaskID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.provided[id]
}

// FindProviders streams up to limit peers (other than this node) that
// provide id and have not withdrawn it. Peers that announced they were
// leaving are held back and sent only if nobody else was found. The channel
// closes when the lookup ends or ctx is done.
func (d *Discovery) FindProviders(ctx context.Context, id protocol.TaskID, limit int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	d.events.WithLabelValues("find").Inc()
	go func() {
		defer close(out)
		var sent int
		var leaving []peer.AddrInfo
		send := func(pi peer.AddrInfo) bool {
			select {
			case out <- pi:
				sent++
				return sent < limit
			case <-ctx.Done():
				return false
			}
		}
		// Ask for more than limit: some results are this node or ignored.
		for pi := range d.dht.FindProvidersAsync(ctx, id.CID(), limit+8) {
			switch d.status(pi.ID, id) {
			case providerOK:
				if !send(pi) {
					return
				}
			case providerLeft:
				leaving = append(leaving, pi)
			}
		}
		for _, pi := range leaving {
			if sent > 0 || !send(pi) {
				return
			}
		}
	}()
	return out
}

type providerStatus int

const (
	providerOK providerStatus = iota
	providerLeft
	providerIgnored
)

func (d *Discovery) status(p peer.ID, id protocol.TaskID) providerStatus {
	if p == d.self {
		return providerIgnored
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	k := ignoreKey{p, id}
	if until, ok := d.ignored[k]; ok {
		if now.Before(until) {
			d.events.WithLabelValues("ignored_provider").Inc()
			return providerIgnored
		}
		delete(d.ignored, k)
	}
	if until, ok := d.left[p]; ok {
		if now.Before(until) {
			return providerLeft
		}
		delete(d.left, p)
	}
	return providerOK
}

func (d *Discovery) providedIDs() []protocol.TaskID {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]protocol.TaskID, 0, len(d.provided))
	for id := range d.provided {
		ids = append(ids, id)
	}
	return ids
}

func (d *Discovery) provideNow(ctx context.Context, id protocol.TaskID) {
	if !d.IsProviding(id) {
		return // withdrawn while queued
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.dht.Provide(pctx, id.CID(), true); err != nil {
		if ctx.Err() == nil {
			d.events.WithLabelValues("provide_error").Inc()
			d.log.Debug("provide failed; will retry at the next round", "task", id.Short(), "err", err)
		}
		return
	}
	d.events.WithLabelValues("provide").Inc()
}

// readmitted clears a LEAVE: the peer is back.
func (d *Discovery) readmitted(p peer.ID) {
	d.mu.Lock()
	delete(d.left, p)
	d.mu.Unlock()
	// The DHT considers a peer for its routing table once, when identify
	// tells it the peer speaks the DHT protocol; if admission had not
	// finished by then, the filter refused it and nothing asks again
	// until a refresh (minutes), so a fresh cluster could sit with empty
	// routing tables. Add it now that it is a member.
	if protos, err := d.h.Peerstore().SupportsProtocols(p, dhtProtocol); err == nil && len(protos) > 0 {
		_, _ = d.dht.RoutingTable().TryAddPeer(p, true, false)
	}
	select {
	case d.joined <- struct{}{}:
	default:
	}
}

// dhtProtocol is the DHT's protocol ID under our prefix.
const dhtProtocol = protocol.DHTPrefix + "/kad/1.0.0"

func (d *Discovery) publish(kind pb.ProviderEvent_Kind, ids ...protocol.TaskID) {
	ev := &pb.ProviderEvent{Kind: kind}
	for _, id := range ids {
		ev.TaskIds = append(ev.TaskIds, id.Multihash())
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		d.log.Error("marshal provider event", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.topic.Publish(ctx, b); err != nil {
		d.log.Debug("publish provider event", "kind", kind, "err", err)
		return
	}
	d.events.WithLabelValues(strings.ToLower(strings.TrimPrefix(kind.String(), "KIND_")) + "_event").Inc()
}

func (d *Discovery) leave() {
	d.publish(pb.ProviderEvent_KIND_LEAVE)
}

// errBadEvent is why the topic validator rejects a message.
var errBadEvent = errors.New("bad provider event")

func decodeEvent(data []byte) (pb.ProviderEvent_Kind, []protocol.TaskID, error) {
	if len(data) > protocol.MaxProviderEventSize {
		return 0, nil, fmt.Errorf("%w: %d bytes", errBadEvent, len(data))
	}
	var ev pb.ProviderEvent
	if err := proto.Unmarshal(data, &ev); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", errBadEvent, err)
	}
	return protocol.ParseProviderEvent(&ev)
}

func (d *Discovery) validate(_ context.Context, _ peer.ID, msg *pubsub.Message) bool {
	_, _, err := decodeEvent(msg.Data)
	return err == nil
}

func (d *Discovery) applyEvents(ctx context.Context, sub *pubsub.Subscription) {
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		author := msg.GetFrom()
		if author == d.self {
			continue
		}
		kind, ids, err := decodeEvent(msg.Data)
		if err != nil {
			continue // the validator already refused it
		}
		until := time.Now().Add(d.validity)
		d.mu.Lock()
		switch kind {
		case pb.ProviderEvent_KIND_WITHDRAW:
			for _, id := range ids {
				d.ignored[ignoreKey{author, id}] = until
			}
		case pb.ProviderEvent_KIND_PROVIDE:
			delete(d.left, author) // any PROVIDE means the author is back
			for _, id := range ids {
				delete(d.ignored, ignoreKey{author, id})
			}
		case pb.ProviderEvent_KIND_LEAVE:
			d.left[author] = until
		}
		d.pruneLocked()
		d.mu.Unlock()
	}
}

// maxIgnored bounds the withdrawal memory; the oldest entries go first.
const maxIgnored = 100_000

func (d *Discovery) pruneLocked() {
	if len(d.ignored) <= maxIgnored {
		return
	}
	now := time.Now()
	for k, until := range d.ignored {
		if now.After(until) || len(d.ignored) > maxIgnored {
			delete(d.ignored, k)
		}
	}
}
