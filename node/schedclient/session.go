package schedclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/storage"
)

// The client is the downloader's scheduler.
var _ download.Scheduler = (*Client)(nil)

// session is one download's peer stream, surviving scheduler failover.
type session struct {
	c         *Client
	req       download.SchedRequest
	decisions chan download.Decision
	out       chan *pb.ScheduleRequest
	ctx       context.Context
	cancel    context.CancelFunc

	mu     sync.Mutex
	layout *protocol.Layout
	tried  map[peer.ID]bool
	closed bool
}

// Open registers a download with its task's scheduler (failing over along
// the ring). It fails with ErrUnavailable when no scheduler answers.
func (c *Client) Open(ctx context.Context, req download.SchedRequest) (download.SchedSession, error) {
	s := &session{
		c: c, req: req, layout: req.Layout,
		decisions: make(chan download.Decision, 16),
		out:       make(chan *pb.ScheduleRequest, 512),
		tried:     make(map[peer.ID]bool),
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	stream, owner, err := s.connect(ctx)
	if err != nil {
		s.cancel()
		return nil, err
	}
	go s.run(stream, owner)
	return s, nil
}

// connect registers with the first scheduler (in ring preference order)
// not tried yet that accepts.
func (s *session) connect(ctx context.Context) (network.Stream, peer.ID, error) {
	var errs []error
	for _, p := range s.c.preference(s.req.ID) {
		s.mu.Lock()
		tried := s.tried[p]
		s.tried[p] = true
		s.mu.Unlock()
		if tried {
			continue
		}
		st, err := s.c.openStream(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_ = st.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := protocol.WriteMsg(st, s.register()); err != nil {
			st.Reset()
			s.c.markDown(p, 10*time.Second)
			errs = append(errs, err)
			continue
		}
		_ = st.SetWriteDeadline(time.Time{})
		s.c.markUp(p)
		return st, p, nil
	}
	return nil, "", fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

func kindOf(k storage.Kind) pb.TaskKind {
	switch k {
	case storage.KindContent:
		return pb.TaskKind_TASK_KIND_CONTENT
	case storage.KindURL:
		return pb.TaskKind_TASK_KIND_URL
	case storage.KindNamed:
		return pb.TaskKind_TASK_KIND_NAMED
	}
	return pb.TaskKind_TASK_KIND_UNSPECIFIED
}

// register builds the current registration (with held pieces once the
// layout is known: after a failover the new owner learns them at once).
func (s *session) register() *pb.ScheduleRequest {
	s.mu.Lock()
	l := s.layout
	s.mu.Unlock()
	r := &pb.PeerRegister{
		TaskId: s.req.ID.Multihash(), Kind: kindOf(s.req.Kind), Url: s.req.URL,
		Priority: uint32(max(0, min(s.req.Priority, protocol.MaxPriority))), NeedBackToSource: s.req.BackToSource,
		Tag: s.req.Tag, Application: s.req.Application,
	}
	r.PieceLength = s.req.PieceLength
	if l != nil {
		r.KnownLength, r.ContentLength, r.PieceLength = true, uint64(l.ContentLength), l.PieceLength
		if s.req.Held != nil {
			if held := s.req.Held(); len(held) == int(l.PieceCount()) {
				r.Held = protocol.Bitmap(held)
			}
		}
	}
	return &pb.ScheduleRequest{Body: &pb.ScheduleRequest_Register{Register: r}}
}

// run serves the session, failing over to the next scheduler when one dies.
func (s *session) run(st network.Stream, owner peer.ID) {
	defer close(s.decisions)
	for {
		err := s.serve(st)
		if s.ctx.Err() != nil {
			return
		}
		s.c.log.Info("scheduler lost mid-download; failing over", "task", s.req.ID.Short(), "scheduler", owner, "err", err)
		s.c.markDown(owner, 10*time.Second)
		st, owner, err = s.connect(s.ctx)
		if err != nil {
			s.deliver(download.Decision{Fallback: true})
			return
		}
	}
}

// serve pumps one stream: requests out, decisions in, until either side fails.
func (s *session) serve(st network.Stream) error {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	errc := make(chan error, 2)
	go func() {
		r := bufio.NewReader(st)
		for {
			var m pb.ScheduleResponse
			if err := protocol.ReadMsg(r, &m, protocol.MaxScheduleResponseSize); err != nil {
				errc <- err
				return
			}
			d, failover, err := decision(&m)
			if err != nil {
				errc <- err
				return
			}
			if failover {
				errc <- errors.New("scheduler asked to go elsewhere")
				return
			}
			if d != nil {
				s.deliver(*d)
			}
		}
	}()
	for {
		select {
		case m, ok := <-s.out:
			if !ok { // closed: everything sent
				_ = st.CloseWrite()
				select {
				case <-errc:
				case <-time.After(2 * time.Second):
				}
				s.cancel()
				return nil
			}
			_ = st.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := protocol.WriteMsg(st, m); err != nil {
				return err
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *session) deliver(d download.Decision) {
	select {
	case s.decisions <- d:
	case <-s.ctx.Done():
	}
}

// decision converts a scheduler answer; failover is true for answers that
// mean "ask another scheduler".
func decision(m *pb.ScheduleResponse) (*download.Decision, bool, error) {
	switch b := m.Body.(type) {
	case *pb.ScheduleResponse_Parents:
		cs, err := protocol.ParseCandidates(b.Parents.GetCandidates(), protocol.MaxCandidates)
		if err != nil {
			return nil, false, err
		}
		d := &download.Decision{Parents: cs}
		if b.Parents.GetKnownLength() && b.Parents.GetPieceLength() != 0 {
			if b.Parents.GetContentLength() > uint64(protocol.MaxContentLength) {
				return nil, false, fmt.Errorf("%w: content length %d", protocol.ErrBadMessage, b.Parents.GetContentLength())
			}
			l, err := protocol.NewLayout(int64(b.Parents.GetContentLength()), b.Parents.GetPieceLength())
			if err != nil {
				return nil, false, fmt.Errorf("%w: %w", protocol.ErrBadMessage, err)
			}
			d.Layout = &l
		}
		if dg, err := protocol.DigestFromBytes(b.Parents.GetContentDigest()); err == nil {
			d.ContentDigest = dg
		}
		return d, false, nil
	case *pb.ScheduleResponse_BackToSource:
		return &download.Decision{BackToSource: true}, false, nil
	case *pb.ScheduleResponse_Empty:
		return &download.Decision{Empty: true}, false, nil
	case *pb.ScheduleResponse_Failure:
		code := b.Failure.GetCode()
		if code == pb.Failure_CODE_NOT_OWNER || code == pb.Failure_CODE_UNAVAILABLE {
			return nil, true, nil
		}
		return &download.Decision{Err: failureError(b.Failure)}, false, nil
	}
	return nil, false, nil // pushes meant for host streams, acks: ignored
}

// failureError maps a scheduler failure to an error callers can test.
func failureError(f *pb.Failure) error {
	msg := f.GetMessage()
	if len(msg) > protocol.MaxMessageLength {
		msg = msg[:protocol.MaxMessageLength]
	}
	switch f.GetCode() {
	case pb.Failure_CODE_NOT_FOUND:
		return fmt.Errorf("%w (scheduler: %s)", download.ErrNoSource, msg)
	case pb.Failure_CODE_BAD_REQUEST:
		return fmt.Errorf("%w: scheduler: %s", protocol.ErrBadMessage, msg)
	}
	return fmt.Errorf("%w: %s: %s", ErrRefused, f.GetCode(), msg)
}

// Decisions implements download.SchedSession.
func (s *session) Decisions() <-chan download.Decision { return s.decisions }

// send queues a request; piece reports are dropped when the queue is full
// (they are advisory), everything else waits.
func (s *session) send(m *pb.ScheduleRequest, advisory bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if advisory {
		select {
		case s.out <- m:
		default:
			s.c.dropped.Inc()
		}
		return
	}
	select {
	case s.out <- m:
	case <-s.ctx.Done():
	}
}

// UpdateLayout implements download.SchedSession.
func (s *session) UpdateLayout(l protocol.Layout) {
	s.mu.Lock()
	known := s.layout != nil && *s.layout == l
	s.layout = &l
	s.mu.Unlock()
	if !known {
		s.send(s.register(), false)
	}
}

// PieceDone implements download.SchedSession.
func (s *session) PieceDone(n uint32, parent peer.ID, cost time.Duration, d protocol.Digest) {
	s.send(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Piece{Piece: &pb.PieceResult{
		Number: n, Parent: []byte(parent), Success: true, CostMs: uint32(min(cost.Milliseconds(), 86_400_000)), Digest: d[:],
	}}}, true)
}

// PieceFailed implements download.SchedSession.
func (s *session) PieceFailed(n uint32, parent peer.ID, temporary bool) {
	s.send(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Piece{Piece: &pb.PieceResult{
		Number: n, Parent: []byte(parent), Temporary: temporary,
	}}}, true)
}

// Reschedule implements download.SchedSession.
func (s *session) Reschedule(blocklist []peer.ID, reason string) {
	m := &pb.PeerReschedule{Reason: reason}
	for _, p := range blocklist {
		m.Blocklist = append(m.Blocklist, []byte(p))
	}
	s.send(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Reschedule{Reschedule: m}}, false)
}

// Close implements download.SchedSession.
func (s *session) Close(err error, st download.Stats, digest protocol.Digest) {
	done := &pb.PeerDone{Success: err == nil, BytesFromPeers: uint64(st.BytesFromPeers), BytesFromSource: uint64(st.BytesFromSource)}
	if err != nil {
		msg := err.Error()
		if len(msg) > protocol.MaxMessageLength {
			msg = msg[:protocol.MaxMessageLength]
		}
		done.Error = msg
	} else if !digest.IsZero() {
		done.ContentDigest = digest[:]
	}
	s.send(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Done{Done: done}}, false)
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.out)
	}
	s.mu.Unlock()
	// The session goroutine flushes and ends; bound it.
	time.AfterFunc(5*time.Second, s.cancel)
}
