package resource

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
)

// Store holds every host, task and peer. Not safe for concurrent use.
type Store struct {
	lim   Limits
	hosts map[peer.ID]*Host
	tasks map[protocol.TaskID]*Task
	peers int
}

// NewStore returns an empty store.
func NewStore(lim Limits) *Store {
	return &Store{lim: lim.withDefaults(), hosts: make(map[peer.ID]*Host), tasks: make(map[protocol.TaskID]*Task)}
}

// Limits returns the store's limits (with defaults applied).
func (s *Store) Limits() Limits { return s.lim }

// Counts returns the number of hosts, tasks and peers.
func (s *Store) Counts() (hosts, tasks, peers int) { return len(s.hosts), len(s.tasks), s.peers }

// Host returns a host.
func (s *Store) Host(id peer.ID) *Host { return s.hosts[id] }

// Hosts calls f for every host.
func (s *Store) Hosts(f func(*Host)) {
	for _, h := range s.hosts {
		f(h)
	}
}

// Task returns a task.
func (s *Store) Task(id protocol.TaskID) *Task { return s.tasks[id] }

// Tasks calls f for every task.
func (s *Store) Tasks(f func(*Task)) {
	for _, t := range s.tasks {
		f(t)
	}
}

// UpsertHost records a host announcement. Announced load replaces what
// was booked: the announcement already contains it.
func (s *Store) UpsertHost(id peer.ID, info protocol.HostInfo, now time.Time) (*Host, error) {
	h := s.hosts[id]
	if h == nil {
		if len(s.hosts) >= s.lim.MaxHosts {
			return nil, fmt.Errorf("%w (%d)", ErrTooManyHosts, s.lim.MaxHosts)
		}
		h = &Host{ID: id, rtt: make(map[peer.ID]time.Duration), peers: make(map[protocol.TaskID]*Peer)}
		s.hosts[id] = h
	}
	h.Info, h.LastSeen = info, now
	h.Booked, h.BookedUploads = 0, 0
	return h, nil
}

// TouchHost returns the host, creating a minimal record (no announcement
// yet) when it is unknown.
func (s *Store) TouchHost(id peer.ID, now time.Time) (*Host, error) {
	if h := s.hosts[id]; h != nil {
		return h, nil
	}
	return s.UpsertHost(id, protocol.HostInfo{}, now)
}

// SetRTT records a measured round trip between two hosts (both directions).
func (s *Store) SetRTT(a, b peer.ID, d time.Duration) {
	for _, pair := range [][2]peer.ID{{a, b}, {b, a}} {
		h := s.hosts[pair[0]]
		if h == nil {
			continue
		}
		if _, ok := h.rtt[pair[1]]; !ok && len(h.rtt) >= s.lim.MaxRTTEntries {
			for k := range h.rtt { // evict one arbitrary entry
				delete(h.rtt, k)
				break
			}
		}
		h.rtt[pair[1]] = d
	}
}

// RemoveHost forgets a host and all its peers.
func (s *Store) RemoveHost(id peer.ID) {
	h := s.hosts[id]
	if h == nil {
		return
	}
	for _, p := range h.peers {
		s.RemovePeer(p)
	}
	delete(s.hosts, id)
	for _, o := range s.hosts {
		delete(o.rtt, id)
	}
}

// EnsureTask returns the task, creating it.
func (s *Store) EnsureTask(id protocol.TaskID, now time.Time) *Task {
	t := s.tasks[id]
	if t == nil {
		t = &Task{ID: id, Created: now, Updated: now, BackSourced: make(map[peer.ID]bool), peers: make(map[peer.ID]*Peer)}
		s.tasks[id] = t
	}
	return t
}

// RemoveTask forgets a task and its peers.
func (s *Store) RemoveTask(id protocol.TaskID) {
	t := s.tasks[id]
	if t == nil {
		return
	}
	for len(t.order) > 0 {
		s.RemovePeer(t.order[len(t.order)-1])
	}
	delete(s.tasks, id)
}

// AddPeer registers host h's download of task t (returning the existing
// peer on re-registration).
func (s *Store) AddPeer(h *Host, t *Task, now time.Time) (*Peer, error) {
	if p := t.peers[h.ID]; p != nil {
		p.Updated = now
		return p, nil
	}
	if len(h.peers) >= s.lim.MaxTasksPerHost {
		return nil, fmt.Errorf("%w: %d tasks, limit %d", ErrTooManyTasks, len(h.peers), s.lim.MaxTasksPerHost)
	}
	if len(t.order) >= s.lim.MaxPeersPerTask {
		return nil, fmt.Errorf("%w: limit %d", ErrTooManyPeers, s.lim.MaxPeersPerTask)
	}
	p := &Peer{Host: h, Task: t, Created: now, Updated: now, parents: make(map[peer.ID]*Peer), idx: len(t.order)}
	t.peers[h.ID] = p
	t.order = append(t.order, p)
	h.peers[t.ID] = p
	t.Updated = now
	s.peers++
	return p, nil
}

// RemovePeer forgets a peer, releasing its edges and bookings.
func (s *Store) RemovePeer(p *Peer) {
	t := p.Task
	if t.peers[p.Host.ID] != p {
		return
	}
	s.ClearParents(p)
	for _, c := range t.order {
		if _, ok := c.parents[p.Host.ID]; ok {
			delete(c.parents, p.Host.ID)
			p.children--
			t.edges--
		}
	}
	last := t.order[len(t.order)-1]
	t.order[p.idx] = last
	last.idx = p.idx
	t.order = t.order[:len(t.order)-1]
	delete(t.peers, p.Host.ID)
	delete(p.Host.peers, t.ID)
	delete(t.BackSourced, p.Host.ID)
	s.peers--
}

// AddEdge makes parent a parent of child and books the load it will take:
// bits per second (the child's share of the parent's bandwidth) and upload
// slots.
func (s *Store) AddEdge(child, parent *Peer, bps uint64, uploads uint32) {
	if _, ok := child.parents[parent.Host.ID]; ok {
		return
	}
	child.parents[parent.Host.ID] = parent
	child.Task.edges++
	parent.children++
	parent.Host.Booked += bps
	parent.Host.BookedUploads += uploads
}

// ClearParents drops the child's parent edges (bookings are released at the
// parent's next announcement, which measures the real load).
func (s *Store) ClearParents(child *Peer) {
	for id, par := range child.parents {
		par.children--
		child.Task.edges--
		delete(child.parents, id)
	}
}

// GCPolicy says when state is released.
type GCPolicy struct {
	HostTTL              time.Duration // host not announced for this long: removed with its peers
	PieceDownloadTimeout time.Duration // running peer without a piece for this long: failed
	PeerTTL              time.Duration // peer not updated for this long: removed
	DoneTTL              time.Duration // failed/left peers kept this long (for stats)
	TaskTTL              time.Duration // task without peers for this long: removed
}

// GCStats counts what one GC pass released.
type GCStats struct{ Hosts, Peers, Tasks, Stuck int }

// GC releases state of vanished hosts, stuck and finished peers and empty
// tasks. Hosts with an open stream (Push set) are kept alive by it.
func (s *Store) GC(now time.Time, pol GCPolicy) GCStats {
	var st GCStats
	for id, h := range s.hosts {
		if h.Push == nil && now.Sub(h.LastSeen) > pol.HostTTL {
			s.RemoveHost(id)
			st.Hosts++
		}
	}
	for _, t := range s.tasks {
		for i := len(t.order) - 1; i >= 0; i-- {
			p := t.order[i]
			progress := p.LastPiece
			if progress.Before(p.Created) {
				progress = p.Created
			}
			switch {
			case (p.State == PeerRunning || p.State == PeerBackToSource) && now.Sub(progress) > pol.PieceDownloadTimeout:
				p.State = PeerFailed
				p.Updated = now
				s.ClearParents(p)
				st.Stuck++
			case (p.State == PeerFailed || p.State == PeerLeft) && now.Sub(p.Updated) > pol.DoneTTL,
				now.Sub(p.Updated) > pol.PeerTTL:
				s.RemovePeer(p)
				t.Updated = now // the TTL of an empty task counts from its last peer
				st.Peers++
			}
		}
		if len(t.order) == 0 && now.Sub(t.Updated) > pol.TaskTTL {
			delete(s.tasks, t.ID)
			st.Tasks++
		}
	}
	return st
}
