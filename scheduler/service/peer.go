package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/scheduler/resource"
	"github.com/dragonfly-p2p/df/scheduler/scheduling"
)

// errClose ends a peer stream after its final answer.
var errClose = errors.New("stream done")

// peerStream serves one download.
func (s *Service) peerStream(st network.Stream, r *bufio.Reader, first *pb.PeerRegister) {
	hostID := st.Conn().RemotePeer()
	c := newConn(st, 256)
	defer c.close()
	p, err := s.register(hostID, first, c.push)
	if err != nil {
		s.m.badMessages.Inc()
		c.push(failure(failureCode(err), err.Error()))
		c.end(5 * time.Second)
		return
	}
	defer s.left(p)
	for {
		_ = st.SetReadDeadline(time.Now().Add(s.gc.PieceDownloadTimeout))
		var m pb.ScheduleRequest
		if err := protocol.ReadMsg(r, &m, protocol.MaxScheduleRequestSize); err != nil {
			return
		}
		err := s.peerMessage(p, &m)
		if errors.Is(err, errClose) {
			return
		}
		if err != nil {
			s.m.badMessages.Inc()
			s.log.Info("closing a peer stream", "host", hostID, "task", p.Task.ID.Short(), "err", err)
			c.push(failure(failureCode(err), err.Error()))
			c.end(5 * time.Second)
			return
		}
	}
}

func failureCode(err error) pb.Failure_Code {
	switch {
	case errors.Is(err, resource.ErrTooManyTasks), errors.Is(err, resource.ErrTooManyPeers), errors.Is(err, resource.ErrTooManyHosts):
		return pb.Failure_CODE_TOO_MANY
	}
	return pb.Failure_CODE_BAD_REQUEST
}

// register records a registration (first or repeated) and answers it.
func (s *Service) register(hostID peer.ID, m *pb.PeerRegister, push func(*pb.ScheduleResponse) bool) (*resource.Peer, error) {
	reg, err := protocol.ParsePeerRegister(m)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.store.TouchHost(hostID, now)
	if err != nil {
		return nil, err
	}
	t := s.store.EnsureTask(reg.Task, now)
	if t.Kind == pb.TaskKind_TASK_KIND_UNSPECIFIED {
		t.Kind = reg.Kind
	}
	if t.URL == "" && reg.URL != "" {
		t.URL = reg.URL
	}
	prio := reg.Priority // the request's own, or LEVEL6 when it names none
	if m.GetPriority() == 0 {
		if p := s.appPriority(reg.Application, reg.URL); p != 0 {
			prio = p // the manager's application rules
		}
	}
	if t.Priority == 0 {
		t.Priority, t.Tag, t.App = prio, reg.Tag, reg.Application
	}
	if t.PieceLength == 0 {
		t.PieceLength = reg.PieceLength
	}
	if reg.Length >= 0 && reg.PieceLength != 0 {
		l, err := protocol.NewLayout(reg.Length, reg.PieceLength)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", protocol.ErrBadMessage, err)
		}
		if err := t.SetLayout(l); err != nil {
			return nil, err
		}
	}
	existing := t.Peer(hostID)
	p, err := s.store.AddPeer(h, t, now)
	if err != nil {
		if t.Peers() == 0 {
			s.store.RemoveTask(t.ID)
		}
		return nil, err
	}
	p.Push, p.Priority, p.Updated = push, prio, now
	p.NeedBackToSource = p.NeedBackToSource || reg.BackSource
	if reg.Held != nil {
		if len(reg.Held) != int(t.PieceCount()) {
			return nil, fmt.Errorf("%w: held bitmap for %d pieces, task has %d", protocol.ErrBadMessage, len(reg.Held), t.PieceCount())
		}
		p.SetHeld(reg.Held)
		if p.Held() > 0 {
			s.dirty[t] = struct{}{}
		}
	}
	if p.State.Done() && p.State != resource.PeerSucceeded {
		p.State = resource.PeerPending // a retry of a failed download
	}
	s.m.registrations.Inc()
	s.updateGauges()
	if existing == nil || existing.Push == nil || existing.Waiting || p.State == resource.PeerPending {
		s.decide(p, now)
	}
	return p, nil
}

// peerMessage handles one message of a peer stream.
func (s *Service) peerMessage(p *resource.Peer, m *pb.ScheduleRequest) error {
	switch b := m.Body.(type) {
	case *pb.ScheduleRequest_Register:
		id, err := protocol.TaskIDFromMultihash(b.Register.GetTaskId())
		if err != nil {
			return err
		}
		if id != p.Task.ID {
			return fmt.Errorf("%w: re-registration for another task", protocol.ErrBadMessage)
		}
		_, err = s.register(p.Host.ID, b.Register, p.Push)
		return err
	case *pb.ScheduleRequest_Piece:
		return s.piece(p, b.Piece)
	case *pb.ScheduleRequest_Reschedule:
		return s.reschedule(p, b.Reschedule)
	case *pb.ScheduleRequest_Done:
		return s.done(p, b.Done)
	}
	return fmt.Errorf("%w: unexpected message on a peer stream", protocol.ErrBadMessage)
}

func (s *Service) piece(p *resource.Peer, m *pb.PieceResult) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := p.Task
	if t.Layout == nil {
		return fmt.Errorf("%w: piece result before the task's layout is known", protocol.ErrBadMessage)
	}
	r, err := protocol.ParsePieceResult(m, t.PieceCount())
	if err != nil {
		return err
	}
	now := time.Now()
	p.Updated = now
	var parent *resource.Peer
	if r.Parent != "" {
		if r.Parent == p.Host.ID {
			return fmt.Errorf("%w: a peer cannot be its own parent", protocol.ErrBadMessage)
		}
		parent = t.Peer(r.Parent)
	}
	if !r.Success {
		s.m.pieceFailures.Inc()
		if r.Parent != "" && !r.Temporary {
			// A busy parent (temporary) is not a bad one: its slots are
			// taken right now. Blocking it would take it from the child
			// for good, and a swarm's parents are busy most of the time.
			p.Block(r.Parent)
		}
		return nil
	}
	if !p.AddPiece(r.Number) {
		return nil // a duplicate report
	}
	p.LastPiece = now
	if p.State == resource.PeerPending {
		p.State = resource.PeerRunning
	}
	_, n, _ := t.Layout.Piece(r.Number)
	size := float64(n)
	if r.Parent == "" {
		s.m.traffic.WithLabelValues("back-to-source").Add(size)
		s.countTraffic(true, uint64(n))
	} else {
		s.m.traffic.WithLabelValues("peer").Add(size)
		s.countTraffic(false, uint64(n))
		if parent != nil {
			parent.AddCost(r.Cost, s.store.Limits().CostWindow)
		}
	}
	if p.Held() == 1 || p.Held() == int(t.PieceCount()) {
		s.dirty[t] = struct{}{}
	}
	return nil
}

func (s *Service) reschedule(p *resource.Peer, m *pb.PeerReschedule) error {
	block, err := protocol.ParsePeerIDs(m.GetBlocklist(), protocol.MaxBlocklist)
	if err != nil {
		return err
	}
	if err := protocol.CheckMessage(m.GetReason()); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p.Block(block...)
	s.store.ClearParents(p)
	p.Reschedules++
	s.m.reschedules.Inc()
	if p.Reschedules > s.sched.Config().RetryLimit*4 {
		p.Push(failure(pb.Failure_CODE_RETRY_LIMIT, fmt.Sprintf("rescheduled %d times", p.Reschedules-1)))
		return nil
	}
	s.decide(p, time.Now())
	return nil
}

func (s *Service) done(p *resource.Peer, m *pb.PeerDone) error {
	if err := protocol.CheckMessage(m.GetError()); err != nil {
		return err
	}
	var digest protocol.Digest
	if m.GetSuccess() {
		d, err := protocol.DigestFromBytes(m.GetContentDigest())
		if err != nil && len(m.GetContentDigest()) > 0 {
			return fmt.Errorf("%w: content digest: %w", protocol.ErrBadMessage, err)
		}
		digest = d
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	t := p.Task
	p.Updated = now
	s.store.ClearParents(p)
	delete(s.waiting, p)
	p.Waiting = false
	if m.GetSuccess() {
		p.State = resource.PeerSucceeded
		if t.Digest.IsZero() && !digest.IsZero() {
			t.Digest = digest
		}
		if t.Layout != nil {
			all := make([]bool, t.PieceCount())
			for i := range all {
				all[i] = true
			}
			p.SetHeld(all)
		}
		s.dirty[t] = struct{}{}
		s.m.peersDone.WithLabelValues("succeeded").Inc()
	} else {
		p.State = resource.PeerFailed
		wasSource := t.BackSourced[p.Host.ID]
		delete(t.BackSourced, p.Host.ID) // the budget goes to someone else
		if p.Host.Seed() && t.SeedHost == p.Host.ID {
			s.sched.SeedFailed(t, now)
			s.dirty[t] = struct{}{}
			wasSource = true
		}
		if wasSource {
			s.replaceSource(t, now)
		}
		s.m.peersDone.WithLabelValues("failed").Inc()
	}
	t.Updated = now
	return errClose
}

// left handles a peer stream's end.
func (s *Service) left(p *resource.Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.waiting, p)
	p.Waiting, p.Push = false, nil
	if p.Task.Peer(p.Host.ID) != p {
		return
	}
	if !p.State.Done() {
		p.State = resource.PeerLeft
		p.Updated = time.Now()
		s.store.ClearParents(p)
		wasSource := p.Task.BackSourced[p.Host.ID]
		if p.Host.Seed() && p.Task.SeedHost == p.Host.ID {
			s.sched.SeedFailed(p.Task, time.Now())
			wasSource = true
		}
		delete(p.Task.BackSourced, p.Host.ID)
		s.dirty[p.Task] = struct{}{}
		if wasSource {
			s.replaceSource(p.Task, time.Now())
		}
	}
}

// replaceSource sends a running peer to the origin when the task's source
// is gone (s.mu held).
func (s *Service) replaceSource(t *resource.Task, now time.Time) {
	if p := s.sched.ReplaceSource(t, now); p != nil {
		s.m.backToSource.Inc()
		s.m.decisions.WithLabelValues("back-to-source").Inc()
		s.log.Info("the task's source left; another peer goes to the origin", "task", t.ID.Short(), "peer", shortID(p.Host.ID))
		p.Push(&pb.ScheduleResponse{Body: &pb.ScheduleResponse_BackToSource{BackToSource: &pb.BackToSource{Reason: "the task's source left"}}})
	}
}

// decide schedules p and sends the answer (s.mu held).
func (s *Service) decide(p *resource.Peer, now time.Time) {
	if p.Push == nil {
		return
	}
	start := time.Now()
	d := s.sched.Schedule(p, now)
	s.m.latency.Observe(time.Since(start).Seconds())
	s.m.decisions.WithLabelValues(actionName(d.Action)).Inc()
	t := p.Task
	p.Waiting = d.Action == scheduling.Wait
	if p.Waiting {
		s.waiting[p] = struct{}{}
	} else {
		delete(s.waiting, p)
	}
	if d.Seed != nil {
		trig := &pb.SeedTrigger{TaskId: t.ID.Multihash(), Kind: t.Kind, Url: t.URL, Priority: t.Priority, Tag: t.Tag, Application: t.App}
		trig.PieceLength = t.PieceLength
		if t.Layout != nil {
			trig.PieceLength = t.Layout.PieceLength
		}
		if d.Seed.Push == nil || !d.Seed.Push(&pb.ScheduleResponse{Body: &pb.ScheduleResponse_Trigger{Trigger: trig}}) {
			s.sched.SeedFailed(t, now)
		} else {
			s.m.seedTriggers.Inc()
			s.log.Info("seed peer triggered", "task", t.ID.Short(), "seed", d.Seed.ID)
		}
	}
	switch d.Action {
	case scheduling.Parents:
		p.NextTopUp = now.Add(s.iv.TopUp)
		s.growing[p] = struct{}{}
		s.sendParents(p, d)
	case scheduling.BackToSource:
		s.m.backToSource.Inc()
		p.Push(&pb.ScheduleResponse{Body: &pb.ScheduleResponse_BackToSource{BackToSource: &pb.BackToSource{Reason: d.Reason}}})
	case scheduling.Empty:
		p.Push(&pb.ScheduleResponse{Body: &pb.ScheduleResponse_Empty{Empty: &pb.EmptyTask{}}})
	case scheduling.Fail:
		p.Push(failure(d.Code, d.Reason))
	}
}

// sendParents sends a parents decision with the task's layout and digest.
func (s *Service) sendParents(p *resource.Peer, d scheduling.Decision) {
	t := p.Task
	msg := &pb.Parents{}
	for i, par := range d.Parents {
		msg.Candidates = append(msg.Candidates, candidateOf(par.Host, p.Host, d.Weights[i]))
	}
	if t.Layout != nil {
		msg.KnownLength, msg.ContentLength, msg.PieceLength = true, uint64(t.Layout.ContentLength), t.Layout.PieceLength
	}
	if !t.Digest.IsZero() {
		msg.ContentDigest = t.Digest[:]
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		names := make([]string, len(d.Parents))
		for i, par := range d.Parents {
			names[i] = fmt.Sprintf("%s@%s(%d pieces)", par.Host.Info.Hostname+"/"+shortID(par.Host.ID), par.Host.Info.IDC, par.Held())
		}
		s.log.Debug("parents", "task", t.ID.Short(), "child", p.Host.Info.Hostname+"/"+shortID(p.Host.ID)+"@"+p.Host.Info.IDC,
			"parents", strings.Join(names, " "))
	}
	p.Push(&pb.ScheduleResponse{Body: &pb.ScheduleResponse_Parents{Parents: msg}})
}

func shortID(id peer.ID) string {
	s := id.String()
	return s[max(0, len(s)-6):]
}

func actionName(a scheduling.Action) string {
	switch a {
	case scheduling.Parents:
		return "parents"
	case scheduling.BackToSource:
		return "back-to-source"
	case scheduling.Empty:
		return "empty"
	case scheduling.Fail:
		return "failure"
	}
	return "wait"
}

// rescheduleRound schedules waiting peers again, and offers more parents
// to running peers of tasks that gained holders.
func (s *Service) rescheduleRound(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.waiting {
		if p.Push == nil || p.Task.Peer(p.Host.ID) != p {
			delete(s.waiting, p)
			continue
		}
		if _, changed := s.dirty[p.Task]; changed || now.Sub(p.Updated) >= 500*time.Millisecond {
			p.Updated = now
			s.decide(p, now)
		}
	}
	limit := s.sched.Config().CandidateLimit
	clear(s.dirty)
	for p := range s.growing {
		if p.Push == nil || p.State != resource.PeerRunning || p.Complete() || len(p.Parents()) >= limit || p.Task.Peer(p.Host.ID) != p {
			delete(s.growing, p)
			continue
		}
		if now.Before(p.NextTopUp) {
			continue
		}
		p.NextTopUp = now.Add(s.iv.TopUp)
		start := time.Now()
		d := s.sched.More(p)
		s.m.latency.Observe(time.Since(start).Seconds())
		if d.Action == scheduling.Parents {
			s.m.decisions.WithLabelValues("more-parents").Inc()
			s.sendParents(p, d)
		}
	}
}
