// Package service serves the schedule protocol (/dragonfly/schedule/1.0.0)
// to admitted cluster members: host streams (announcements, probe results;
// the scheduler pushes probe requests and seed triggers), peer streams (one
// per download: registration, piece results, reschedules, completion; the
// scheduler answers with parents, back-to-source, empty-task or failure and
// pushes more parents as the swarm grows) and one-shots (stat, announce,
// delete, ping). Every message is bounded and validated; the host a
// message speaks for is always the stream's authenticated peer.
package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/scheduler/resource"
	"github.com/dragonfly-p2p/df/scheduler/scheduling"
)

// Publisher publishes cluster-wide task deletions (a gossipsub topic).
type Publisher interface {
	Publish(ctx context.Context, data []byte) error
}

// Intervals of the service's background work.
type Intervals struct {
	Reschedule time.Duration // waiting peers are scheduled again (default 200 ms)
	TopUp      time.Duration // running peers are offered more parents at most this often (default 250 ms)
	Probe      time.Duration // hosts are asked to probe others (default 30 s)
	GC         time.Duration // default 10 s
}

func (iv Intervals) withDefaults() Intervals {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&iv.Reschedule, 200*time.Millisecond)
	def(&iv.TopUp, 250*time.Millisecond)
	def(&iv.Probe, 30*time.Second)
	def(&iv.GC, 10*time.Second)
	return iv
}

// Service is the schedule protocol server.
type Service struct {
	h     host.Host
	log   *slog.Logger
	store *resource.Store
	sched *scheduling.Scheduler
	pub   Publisher
	gc    resource.GCPolicy
	iv    Intervals
	m     *metrics
	probe int // targets per probe request

	// Cumulative traffic since started (reported to the manager).
	started                time.Time
	peerBytes, sourceBytes atomic.Uint64

	mu      sync.Mutex
	apps    []AppRule // the manager's application priority rules
	waiting map[*resource.Peer]struct{}
	growing map[*resource.Peer]struct{} // running peers that may take more parents
	dirty   map[*resource.Task]struct{}
	ready   bool
}

// Option configures New.
type Option func(*Service)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithPublisher publishes task deletions to the cluster.
func WithPublisher(p Publisher) Option { return func(s *Service) { s.pub = p } }

// WithGC sets the GC policy.
func WithGC(p resource.GCPolicy) Option { return func(s *Service) { s.gc = p } }

// WithIntervals sets background intervals.
func WithIntervals(iv Intervals) Option { return func(s *Service) { s.iv = iv } }

// WithRegisterer registers metrics.
func WithRegisterer(r prometheus.Registerer) Option { return func(s *Service) { s.m = newMetrics(r) } }

// DefaultGC is the default GC policy.
func DefaultGC() resource.GCPolicy {
	return resource.GCPolicy{HostTTL: 3 * time.Minute, PieceDownloadTimeout: 10 * time.Minute, PeerTTL: 24 * time.Hour,
		DoneTTL: time.Minute, TaskTTL: 10 * time.Minute}
}

// New returns a service; h must be the admission-gated host.
func New(h host.Host, store *resource.Store, sched *scheduling.Scheduler, opts ...Option) *Service {
	s := &Service{h: h, log: slog.New(slog.DiscardHandler), store: store, sched: sched, gc: DefaultGC(), probe: 8,
		started: time.Now().UTC().Truncate(time.Millisecond),
		waiting: make(map[*resource.Peer]struct{}), growing: make(map[*resource.Peer]struct{}), dirty: make(map[*resource.Task]struct{})}
	for _, o := range opts {
		o(s)
	}
	if s.m == nil {
		s.m = newMetrics(nil)
	}
	s.iv = s.iv.withDefaults()
	return s
}

// Run serves the protocol until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	s.h.SetStreamHandler(protocol.ScheduleID, s.handle)
	defer s.h.RemoveStreamHandler(protocol.ScheduleID)
	s.setReady(true)
	defer s.setReady(false)
	resched := time.NewTicker(s.iv.Reschedule)
	probe := time.NewTicker(s.iv.Probe)
	gc := time.NewTicker(s.iv.GC)
	defer resched.Stop()
	defer probe.Stop()
	defer gc.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-resched.C:
			s.rescheduleRound(now)
		case <-probe.C:
			s.probeRound()
		case now := <-gc.C:
			s.mu.Lock()
			st := s.store.GC(now, s.gc)
			for p := range s.waiting {
				if p.Task.Peer(p.Host.ID) != p {
					delete(s.waiting, p)
				}
			}
			for p := range s.growing {
				if p.Task.Peer(p.Host.ID) != p {
					delete(s.growing, p)
				}
			}
			for t := range s.dirty {
				if s.store.Task(t.ID) != t {
					delete(s.dirty, t)
				}
			}
			s.updateGauges()
			s.mu.Unlock()
			if st != (resource.GCStats{}) {
				s.log.Info("released state", "hosts", st.Hosts, "peers", st.Peers, "tasks", st.Tasks, "stuck", st.Stuck)
			}
		}
	}
}

func (s *Service) setReady(v bool) {
	s.mu.Lock()
	s.ready = v
	s.mu.Unlock()
}

// Ready reports whether the service accepts streams.
func (s *Service) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

func (s *Service) updateGauges() {
	h, t, p := s.store.Counts()
	s.m.hosts.Set(float64(h))
	s.m.tasks.Set(float64(t))
	s.m.peers.Set(float64(p))
}

func (s *Service) handle(st network.Stream) {
	defer st.Close()
	_ = st.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(st)
	var first pb.ScheduleRequest
	if err := protocol.ReadMsg(r, &first, protocol.MaxScheduleRequestSize); err != nil {
		s.m.badMessages.Inc()
		s.log.Debug("bad first schedule message", "peer", st.Conn().RemotePeer(), "err", err)
		_ = st.Reset()
		return
	}
	switch b := first.Body.(type) {
	case *pb.ScheduleRequest_Host:
		s.hostStream(st, r, b.Host)
	case *pb.ScheduleRequest_Register:
		s.peerStream(st, r, b.Register)
	case *pb.ScheduleRequest_Stat, *pb.ScheduleRequest_Announce, *pb.ScheduleRequest_Delete, *pb.ScheduleRequest_Ping:
		resp := s.oneShot(&first, st.Conn().RemotePeer())
		_ = st.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_ = protocol.WriteMsg(st, resp)
	default:
		s.m.badMessages.Inc()
		_ = st.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_ = protocol.WriteMsg(st, failure(pb.Failure_CODE_BAD_REQUEST, "a stream must start with a host announcement, a registration or a one-shot request"))
	}
}

func failure(code pb.Failure_Code, msg string) *pb.ScheduleResponse {
	if len(msg) > protocol.MaxMessageLength {
		msg = msg[:protocol.MaxMessageLength]
	}
	return &pb.ScheduleResponse{Body: &pb.ScheduleResponse_Failure{Failure: &pb.Failure{Code: code, Message: msg}}}
}

// hostStream serves a node's host stream.
func (s *Service) hostStream(st network.Stream, r *bufio.Reader, first *pb.HostAnnounce) {
	id := st.Conn().RemotePeer()
	c := newConn(st, 64)
	defer c.close()
	if err := s.announce(id, first, c.push); err != nil {
		s.m.badMessages.Inc()
		c.push(failure(pb.Failure_CODE_BAD_REQUEST, err.Error()))
		c.end(5 * time.Second)
		return
	}
	s.probeHost(id)
	defer func() {
		s.mu.Lock()
		if h := s.store.Host(id); h != nil {
			h.Push = nil
			h.LastSeen = time.Now()
		}
		s.mu.Unlock()
	}()
	for {
		_ = st.SetReadDeadline(time.Now().Add(5 * time.Minute))
		var m pb.ScheduleRequest
		if err := protocol.ReadMsg(r, &m, protocol.MaxScheduleRequestSize); err != nil {
			return
		}
		var err error
		switch b := m.Body.(type) {
		case *pb.ScheduleRequest_Host:
			err = s.announce(id, b.Host, c.push)
		case *pb.ScheduleRequest_Probes:
			err = s.probeResults(id, b.Probes)
		default:
			err = fmt.Errorf("%w: unexpected message on a host stream", protocol.ErrBadMessage)
		}
		if err != nil {
			s.m.badMessages.Inc()
			s.log.Info("closing a host stream", "host", id, "err", err)
			c.push(failure(pb.Failure_CODE_BAD_REQUEST, err.Error()))
			c.end(5 * time.Second)
			return
		}
	}
}

func (s *Service) announce(id peer.ID, m *pb.HostAnnounce, push func(*pb.ScheduleResponse) bool) error {
	info, err := protocol.ParseHostAnnounce(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.store.UpsertHost(id, info, time.Now())
	if err != nil {
		return err
	}
	h.Push = push
	s.updateGauges()
	return nil
}

func (s *Service) probeResults(id peer.ID, m *pb.ProbeResults) error {
	if len(m.GetResults()) > protocol.MaxProbeResults {
		return fmt.Errorf("%w: %d probe results", protocol.ErrBadMessage, len(m.GetResults()))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range m.GetResults() {
		p, err := peer.IDFromBytes(r.GetPeer())
		if err != nil {
			return fmt.Errorf("%w: probe result: %w", protocol.ErrBadMessage, err)
		}
		if !r.GetOk() || p == id || r.GetRttUs() > 60_000_000 {
			continue
		}
		s.store.SetRTT(id, p, time.Duration(r.GetRttUs())*time.Microsecond)
	}
	return nil
}

// probeHost asks a host to measure its RTT to hosts it has not measured.
func (s *Service) probeHost(id peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.store.Host(id)
	if h == nil || h.Push == nil {
		return
	}
	var targets []*pb.Candidate
	s.store.Hosts(func(o *resource.Host) {
		if len(targets) >= s.probe || o == h || len(o.Info.Addrs) == 0 {
			return
		}
		if _, known := h.RTT(o.ID); known {
			return
		}
		targets = append(targets, candidateOf(o, nil, 0))
	})
	if len(targets) > 0 {
		h.Push(&pb.ScheduleResponse{Body: &pb.ScheduleResponse_Probe{Probe: &pb.ProbeRequest{Targets: targets}}})
		s.m.probes.Inc()
	}
}

func (s *Service) probeRound() {
	var ids []peer.ID
	s.mu.Lock()
	s.store.Hosts(func(h *resource.Host) {
		if h.Push != nil {
			ids = append(ids, h.ID)
		}
	})
	s.mu.Unlock()
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		s.probeHost(id)
	}
}

func candidateOf(h *resource.Host, child *resource.Host, weight uint32) *pb.Candidate {
	c := &pb.Candidate{Peer: []byte(h.ID), Weight: weight, Idc: h.Info.IDC}
	for i, a := range h.Info.Addrs {
		if i == protocol.MaxAddrs {
			break
		}
		c.Addrs = append(c.Addrs, a.Bytes())
	}
	if child != nil {
		if d, ok := h.RTT(child.ID); ok {
			c.RttUs = uint32(min(d.Microseconds(), 60_000_000))
		}
	}
	return c
}

// oneShot answers stat, announce, delete and ping.
func (s *Service) oneShot(m *pb.ScheduleRequest, from peer.ID) *pb.ScheduleResponse {
	switch b := m.Body.(type) {
	case *pb.ScheduleRequest_Ping:
		return &pb.ScheduleResponse{Body: &pb.ScheduleResponse_Pong{Pong: &pb.Pong{}}}
	case *pb.ScheduleRequest_Stat:
		id, err := protocol.TaskIDFromMultihash(b.Stat.GetTaskId())
		if err != nil {
			s.m.badMessages.Inc()
			return failure(pb.Failure_CODE_BAD_REQUEST, err.Error())
		}
		return &pb.ScheduleResponse{Body: &pb.ScheduleResponse_Task{Task: s.stat(id)}}
	case *pb.ScheduleRequest_Announce:
		if err := s.announceTask(b.Announce, from); err != nil {
			s.m.badMessages.Inc()
			code := pb.Failure_CODE_BAD_REQUEST
			if errors.Is(err, resource.ErrTooManyTasks) || errors.Is(err, resource.ErrTooManyPeers) || errors.Is(err, resource.ErrTooManyHosts) {
				code = pb.Failure_CODE_TOO_MANY
			}
			return failure(code, err.Error())
		}
		return &pb.ScheduleResponse{Body: &pb.ScheduleResponse_Ack{Ack: &pb.Ack{}}}
	case *pb.ScheduleRequest_Delete:
		id, err := protocol.TaskIDFromMultihash(b.Delete.GetTaskId())
		if err != nil {
			s.m.badMessages.Inc()
			return failure(pb.Failure_CODE_BAD_REQUEST, err.Error())
		}
		s.mu.Lock()
		s.store.RemoveTask(id)
		s.updateGauges()
		s.mu.Unlock()
		if s.pub != nil {
			data, _ := proto.Marshal(&pb.TaskDelete{TaskId: id.Multihash()})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := s.pub.Publish(ctx, data)
			cancel()
			if err != nil {
				s.log.Warn("publishing a task delete", "task", id.Short(), "err", err)
				return failure(pb.Failure_CODE_UNAVAILABLE, "deleted here, but the delete could not be published to the cluster: "+err.Error())
			}
		}
		s.log.Info("task deleted", "task", id.Short(), "by", from)
		return &pb.ScheduleResponse{Body: &pb.ScheduleResponse_Ack{Ack: &pb.Ack{}}}
	}
	return failure(pb.Failure_CODE_BAD_REQUEST, "unexpected one-shot request")
}

func (s *Service) stat(id protocol.TaskID) *pb.TaskInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := &pb.TaskInfo{TaskId: id.Multihash()}
	t := s.store.Task(id)
	if t == nil || t.Peers() == 0 {
		return info
	}
	info.Found, info.Kind = true, t.Kind
	if t.Layout != nil {
		info.ContentLength, info.PieceLength = uint64(t.Layout.ContentLength), t.Layout.PieceLength
	}
	if !t.Digest.IsZero() {
		info.ContentDigest = t.Digest[:]
	}
	t.Each(func(p *resource.Peer) {
		if p.State.Done() && p.State != resource.PeerSucceeded {
			return
		}
		info.Peers++
		if p.Complete() {
			info.CompletePeers++
			if len(info.Holders) < protocol.MaxCandidates {
				info.Holders = append(info.Holders, candidateOf(p.Host, nil, 0))
			}
		}
	})
	info.Found = info.Peers > 0
	return info
}

func (s *Service) announceTask(m *pb.TaskAnnounce, from peer.ID) error {
	id, err := protocol.TaskIDFromMultihash(m.GetTaskId())
	if err != nil {
		return err
	}
	switch m.GetKind() {
	case pb.TaskKind_TASK_KIND_CONTENT, pb.TaskKind_TASK_KIND_URL, pb.TaskKind_TASK_KIND_NAMED:
	default:
		return fmt.Errorf("%w: unknown task kind %d", protocol.ErrBadMessage, m.GetKind())
	}
	if m.GetContentLength() > uint64(protocol.MaxContentLength) {
		return fmt.Errorf("%w: content length %d", protocol.ErrBadMessage, m.GetContentLength())
	}
	l, err := protocol.NewLayout(int64(m.GetContentLength()), m.GetPieceLength())
	if err != nil {
		return fmt.Errorf("%w: %w", protocol.ErrBadMessage, err)
	}
	d, err := protocol.DigestFromBytes(m.GetContentDigest())
	if err != nil {
		return fmt.Errorf("%w: content digest: %w", protocol.ErrBadMessage, err)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.store.TouchHost(from, now)
	if err != nil {
		return err
	}
	t := s.store.EnsureTask(id, now)
	if err := t.SetLayout(l); err != nil {
		return err
	}
	if !t.Digest.IsZero() && t.Digest != d {
		return fmt.Errorf("%w: content digest differs from the task's", protocol.ErrBadMessage)
	}
	t.Digest = d
	if t.Kind == pb.TaskKind_TASK_KIND_UNSPECIFIED {
		t.Kind = m.GetKind()
	}
	p, err := s.store.AddPeer(h, t, now)
	if err != nil {
		return err
	}
	all := make([]bool, l.PieceCount())
	for i := range all {
		all[i] = true
	}
	p.SetHeld(all)
	p.State, p.Updated = resource.PeerSucceeded, now
	s.dirty[t] = struct{}{}
	s.updateGauges()
	return nil
}

// Knows reports whether the service has state for a task.
func (s *Service) Knows(id protocol.TaskID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.Task(id) != nil
}
