// Package schedclient is the node's side of the schedule protocol. It keeps
// a host stream open to every scheduler (announcing the host, answering
// probe requests, receiving seed triggers), opens one peer stream per
// download with the task's owner on the consistent-hash ring, turns the
// scheduler's answers into download decisions, and fails over to the next
// owner — re-registering with the pieces already held — when a scheduler
// dies. When no scheduler answers, downloads fall back to the DHT.
package schedclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/dragonfly-p2p/df/node/probe"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/protocol/ring"
)

// Errors.
var (
	// ErrUnavailable: no scheduler could be reached.
	ErrUnavailable = errors.New("no scheduler reachable")
	// ErrRefused: the scheduler refused the download (priority, limits).
	ErrRefused = errors.New("scheduler refused the download")
)

// Trigger asks a seed node to fetch a task from its origin.
type Trigger struct {
	ID               protocol.TaskID
	Kind             pb.TaskKind
	URL              string
	PieceLength      uint32
	Priority         uint32
	Tag, Application string
}

// Client connects a node to its schedulers.
type Client struct {
	h        host.Host
	log      *slog.Logger
	members  atomic.Pointer[members]
	changed  chan struct{} // SetSchedulers → Run
	announce func() *pb.HostAnnounce
	trigger  func(Trigger)
	every    time.Duration
	reg      prometheus.Registerer
	// dropped counts piece reports dropped because a session's send queue
	// was full (the scheduler or the link to it is slower than the pieces).
	dropped prometheus.Counter

	mu   sync.Mutex
	down map[peer.ID]time.Time // unhealthy until
}

// members is one immutable scheduler set: the ring and the addresses.
type members struct {
	ring  *ring.Ring
	addrs map[peer.ID]peer.AddrInfo
}

func (c *Client) ring() *ring.Ring { return c.members.Load().ring }

// Option configures New.
type Option func(*Client)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithTriggerHandler handles seed triggers (seed nodes only).
func WithTriggerHandler(f func(Trigger)) Option { return func(c *Client) { c.trigger = f } }

// WithAnnounceInterval sets how often the host is announced (default 30 s).
func WithAnnounceInterval(d time.Duration) Option { return func(c *Client) { c.every = d } }

// WithRegisterer exports the client's metrics.
func WithRegisterer(reg prometheus.Registerer) Option { return func(c *Client) { c.reg = reg } }

// New returns a client for schedulers. h must be the admission-gated host;
// announce builds the current host announcement.
// The scheduler set may be empty (a node whose manager has not answered
// yet); SetSchedulers replaces it at any time.
func New(h host.Host, schedulers []peer.AddrInfo, announce func() *pb.HostAnnounce, opts ...Option) (*Client, error) {
	c := &Client{
		h: h, log: slog.New(slog.DiscardHandler), announce: announce, every: 30 * time.Second,
		down: make(map[peer.ID]time.Time), changed: make(chan struct{}, 1),
	}
	c.SetSchedulers(schedulers)
	for _, o := range opts {
		o(c)
	}
	c.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dragonfly_dfnode_schedule_reports_dropped_total",
		Help: "Piece reports not sent to the scheduler because the session's queue was full; the scheduler then knows less about which parents hold what and how fast they are.",
	})
	if c.reg != nil {
		if err := c.reg.Register(c.dropped); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return c, nil
}

// SetSchedulers replaces the scheduler set (the manager's list changed):
// the ring is rebuilt, host streams open to new schedulers and close to
// departed ones. Every node builds the same ring from the same list.
func (c *Client) SetSchedulers(schedulers []peer.AddrInfo) {
	m := &members{addrs: make(map[peer.ID]peer.AddrInfo, len(schedulers))}
	ids := make([]peer.ID, 0, len(schedulers))
	for _, s := range schedulers {
		if s.ID == "" || s.ID == c.h.ID() {
			continue
		}
		m.addrs[s.ID] = s
		ids = append(ids, s.ID)
		c.h.Peerstore().AddAddrs(s.ID, s.Addrs, peerstore.PermanentAddrTTL)
	}
	m.ring = ring.New(ids, 0)
	if old := c.members.Load(); old != nil && slices.Equal(old.ring.Members(), m.ring.Members()) {
		c.members.Store(m) // addresses may have changed
		return
	}
	c.members.Store(m)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Schedulers returns the schedulers' peer IDs.
func (c *Client) Schedulers() []peer.ID { return c.ring().Members() }

// IsScheduler reports whether p is one of this node's schedulers.
func (c *Client) IsScheduler(p peer.ID) bool {
	_, ok := c.members.Load().addrs[p]
	return ok
}

// Healthy reports whether at least one scheduler is believed up.
func (c *Client) Healthy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for id := range c.members.Load().addrs {
		if until, ok := c.down[id]; !ok || now.After(until) {
			return true
		}
	}
	return false
}

func (c *Client) markDown(p peer.ID, d time.Duration) {
	c.mu.Lock()
	c.down[p] = time.Now().Add(d)
	c.mu.Unlock()
}

func (c *Client) markUp(p peer.ID) {
	c.mu.Lock()
	delete(c.down, p)
	c.mu.Unlock()
}

// preference lists every scheduler for id: ring order, those believed down last.
func (c *Client) preference(id protocol.TaskID) []peer.ID {
	r := c.ring()
	all := r.Owners(id, r.Len())
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	isDown := func(p peer.ID) bool { until, ok := c.down[p]; return ok && now.Before(until) }
	slices.SortStableFunc(all, func(a, b peer.ID) int {
		da, db := isDown(a), isDown(b)
		switch {
		case da == db:
			return 0
		case da:
			return 1
		}
		return -1
	})
	return all
}

// openStream opens a schedule-protocol stream to p.
func (c *Client) openStream(ctx context.Context, p peer.ID) (network.Stream, error) {
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := c.h.NewStream(octx, p, protocol.ScheduleID)
	if err != nil {
		c.markDown(p, 10*time.Second)
		return nil, fmt.Errorf("scheduler %s: %w", p, err)
	}
	return s, nil
}

// Run keeps a host stream to every scheduler until ctx ends, following
// SetSchedulers.
func (c *Client) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	loops := map[peer.ID]context.CancelFunc{}
	defer func() {
		for _, cancel := range loops {
			cancel()
		}
	}()
	for {
		want := c.ring().Members()
		for id, cancel := range loops {
			if !slices.Contains(want, id) {
				cancel()
				delete(loops, id)
			}
		}
		for _, id := range want {
			if _, ok := loops[id]; !ok {
				lctx, cancel := context.WithCancel(ctx)
				loops[id] = cancel
				wg.Go(func() { c.hostLoop(lctx, id) })
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.changed:
		}
	}
}

func (c *Client) hostLoop(ctx context.Context, p peer.ID) {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := c.hostSession(ctx, p)
		if ctx.Err() != nil {
			return
		}
		c.log.Info("scheduler host stream ended; reconnecting", "scheduler", p, "in", backoff, "err", err)
		c.markDown(p, backoff)
		if time.Since(start) > time.Minute {
			backoff = 500 * time.Millisecond
		}
		select {
		case <-time.After(backoff + rand.N(backoff/2)):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// hostSession announces the host and serves the scheduler's pushes.
func (c *Client) hostSession(ctx context.Context, p peer.ID) error {
	s, err := c.openStream(ctx, p)
	if err != nil {
		return err
	}
	defer s.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(sctx, func() { _ = s.Reset() })
	defer stop()
	var wmu sync.Mutex
	write := func(m *pb.ScheduleRequest) error {
		wmu.Lock()
		defer wmu.Unlock()
		_ = s.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return protocol.WriteMsg(s, m)
	}
	if err := write(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Host{Host: c.announce()}}); err != nil {
		return err
	}
	c.markUp(p)
	errc := make(chan error, 1)
	go func() { errc <- c.readPushes(sctx, s, p, write) }()
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := write(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Host{Host: c.announce()}}); err != nil {
				return err
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

// readPushes handles ProbeRequest and SeedTrigger pushed on a host stream.
func (c *Client) readPushes(ctx context.Context, s network.Stream, p peer.ID, write func(*pb.ScheduleRequest) error) error {
	r := bufio.NewReader(s)
	for {
		var m pb.ScheduleResponse
		if err := protocol.ReadMsg(r, &m, protocol.MaxScheduleResponseSize); err != nil {
			return err
		}
		switch b := m.Body.(type) {
		case *pb.ScheduleResponse_Probe:
			targets, err := protocol.ParseCandidates(b.Probe.GetTargets(), protocol.MaxProbeTargets)
			if err != nil {
				return err
			}
			go c.probe(ctx, targets, write)
		case *pb.ScheduleResponse_Trigger:
			t, err := parseTrigger(b.Trigger)
			if err != nil {
				c.log.Warn("ignoring a malformed seed trigger", "scheduler", p, "err", err)
				continue
			}
			if c.trigger != nil {
				go c.trigger(t)
			}
		}
	}
}

func parseTrigger(m *pb.SeedTrigger) (Trigger, error) {
	reg, err := protocol.ParsePeerRegister(&pb.PeerRegister{
		TaskId: m.GetTaskId(), Kind: m.GetKind(), Url: m.GetUrl(), PieceLength: m.GetPieceLength(),
		Priority: m.GetPriority(), Tag: m.GetTag(), Application: m.GetApplication(),
	})
	if err != nil {
		return Trigger{}, err
	}
	if reg.URL == "" {
		return Trigger{}, fmt.Errorf("%w: seed trigger without a URL", protocol.ErrBadMessage)
	}
	return Trigger{ID: reg.Task, Kind: reg.Kind, URL: reg.URL, PieceLength: reg.PieceLength,
		Priority: reg.Priority, Tag: reg.Tag, Application: reg.Application}, nil
}

func (c *Client) probe(ctx context.Context, targets []protocol.Candidate, write func(*pb.ScheduleRequest) error) {
	infos := make([]peer.AddrInfo, 0, len(targets))
	for _, t := range targets {
		if t.Peer.ID != c.h.ID() {
			infos = append(infos, t.Peer)
		}
	}
	results := probe.ProbeAll(ctx, c.h, infos)
	msg := &pb.ProbeResults{}
	for _, r := range results {
		pr := &pb.ProbeResult{Peer: []byte(r.Peer), Ok: r.Err == nil}
		if r.Err == nil {
			pr.RttUs = uint32(min(r.RTT.Microseconds(), 60_000_000))
		}
		msg.Results = append(msg.Results, pr)
	}
	if err := write(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Probes{Probes: msg}}); err != nil {
		c.log.Debug("sending probe results", "err", err)
	}
}

// oneShot sends a one-shot request to id's owner (then the others) and
// returns the answer.
func (c *Client) oneShot(ctx context.Context, id protocol.TaskID, req *pb.ScheduleRequest) (*pb.ScheduleResponse, error) {
	var errs []error
	for _, p := range c.preference(id) {
		s, err := c.openStream(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		var resp pb.ScheduleResponse
		err = protocol.WriteMsg(s, req)
		if err == nil {
			err = protocol.ReadMsg(bufio.NewReader(s), &resp, protocol.MaxScheduleResponseSize)
		}
		s.Close()
		if err != nil {
			c.markDown(p, 10*time.Second)
			errs = append(errs, fmt.Errorf("scheduler %s: %w", p, err))
			continue
		}
		c.markUp(p)
		if f := resp.GetFailure(); f != nil {
			return nil, failureError(f)
		}
		return &resp, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

// TaskInfo is what a scheduler knows of a task.
type TaskInfo struct {
	Found         bool
	Layout        protocol.Layout
	KnownLength   bool
	ContentDigest protocol.Digest
	Peers         uint32
	CompletePeers uint32
	Holders       []protocol.Candidate
}

// Stat asks the task's scheduler about it.
func (c *Client) Stat(ctx context.Context, id protocol.TaskID) (TaskInfo, error) {
	resp, err := c.oneShot(ctx, id, &pb.ScheduleRequest{Body: &pb.ScheduleRequest_Stat{Stat: &pb.TaskStat{TaskId: id.Multihash()}}})
	if err != nil {
		return TaskInfo{}, err
	}
	t := resp.GetTask()
	if t == nil {
		return TaskInfo{}, fmt.Errorf("%w: unexpected answer to a stat", protocol.ErrBadMessage)
	}
	info := TaskInfo{Found: t.GetFound(), Peers: t.GetPeers(), CompletePeers: t.GetCompletePeers()}
	if !info.Found {
		return info, nil
	}
	if t.GetPieceLength() != 0 {
		l, err := protocol.NewLayout(int64(min(t.GetContentLength(), uint64(protocol.MaxContentLength))), t.GetPieceLength())
		if err == nil {
			info.Layout, info.KnownLength = l, true
		}
	}
	if d, err := protocol.DigestFromBytes(t.GetContentDigest()); err == nil {
		info.ContentDigest = d
	}
	info.Holders, err = protocol.ParseCandidates(t.GetHolders(), protocol.MaxCandidates)
	return info, err
}

// Announce tells the task's scheduler this host holds a complete task.
func (c *Client) Announce(ctx context.Context, id protocol.TaskID, kind pb.TaskKind, l protocol.Layout, d protocol.Digest) error {
	_, err := c.oneShot(ctx, id, &pb.ScheduleRequest{Body: &pb.ScheduleRequest_Announce{Announce: &pb.TaskAnnounce{
		TaskId: id.Multihash(), Kind: kind, ContentLength: uint64(l.ContentLength), PieceLength: l.PieceLength, ContentDigest: d[:],
	}}})
	return err
}

// Delete asks the task's scheduler to delete it cluster-wide.
func (c *Client) Delete(ctx context.Context, id protocol.TaskID) error {
	_, err := c.oneShot(ctx, id, &pb.ScheduleRequest{Body: &pb.ScheduleRequest_Delete{Delete: &pb.TaskDelete{TaskId: id.Multihash()}}})
	return err
}

// DecodeTaskDelete parses a gossipsub task-delete message.
func DecodeTaskDelete(data []byte) (protocol.TaskID, error) {
	if len(data) > protocol.MaxProbeSize {
		return protocol.TaskID{}, fmt.Errorf("%w: task delete of %d bytes", protocol.ErrBadMessage, len(data))
	}
	var m pb.TaskDelete
	if err := proto.Unmarshal(data, &m); err != nil {
		return protocol.TaskID{}, fmt.Errorf("%w: %w", protocol.ErrBadMessage, err)
	}
	return protocol.TaskIDFromMultihash(m.GetTaskId())
}
