// Package resource is the scheduler's model of the cluster: hosts (where
// they are, how much they can upload and are uploading), tasks (layout,
// digest, origin, seed state) and peers (one host downloading one task:
// state machine, pieces held, parents, piece-cost history as a parent).
//
// A Store is not safe for concurrent use: the schedule service serialises
// every change under one lock, which keeps decisions consistent (load
// booked by one decision is seen by the next) and is fast enough for tens
// of thousands of decisions per second (see the scheduling benchmarks).
package resource

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
)

// Errors.
var (
	// ErrTooManyTasks: a host registered more downloads than Limits.MaxTasksPerHost.
	ErrTooManyTasks = errors.New("too many tasks registered by this host")
	// ErrTooManyPeers: a task has Limits.MaxPeersPerTask peers already.
	ErrTooManyPeers = errors.New("too many peers for this task")
	// ErrTooManyHosts: the scheduler tracks Limits.MaxHosts hosts already.
	ErrTooManyHosts = errors.New("too many hosts")
	// ErrLayoutConflict: a peer claimed a layout different from the task's.
	ErrLayoutConflict = errors.New("layout differs from the task's")
)

// PeerState is a peer's place in its life cycle:
//
//	Pending → Running → Succeeded
//	Pending → BackToSource → Succeeded
//	any → Failed | Left
type PeerState int

// Peer states.
const (
	PeerPending PeerState = iota
	PeerRunning
	PeerBackToSource
	PeerSucceeded
	PeerFailed
	PeerLeft
)

var stateNames = [...]string{"pending", "running", "back-to-source", "succeeded", "failed", "left"}

func (s PeerState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Done reports whether the state is final.
func (s PeerState) Done() bool { return s >= PeerSucceeded }

// SizeScope classifies a task by size, as Dragonfly does.
type SizeScope int

// Size scopes.
const (
	ScopeUnknown SizeScope = iota
	ScopeEmpty             // no content
	ScopeTiny              // ≤ 128 bytes
	ScopeSmall             // one piece
	ScopeNormal
)

// Limits bound what the store keeps.
type Limits struct {
	MaxHosts        int // default 100,000
	MaxTasksPerHost int // concurrent downloads a host may register; default 1,024
	MaxPeersPerTask int // default 50,000
	MaxRTTEntries   int // measured RTTs kept per host; default 256
	CostWindow      int // piece costs kept per parent; default 64
}

func (l Limits) withDefaults() Limits {
	if l.MaxHosts <= 0 {
		l.MaxHosts = 100_000
	}
	if l.MaxTasksPerHost <= 0 {
		l.MaxTasksPerHost = 1024
	}
	if l.MaxPeersPerTask <= 0 {
		l.MaxPeersPerTask = 50_000
	}
	if l.MaxRTTEntries <= 0 {
		l.MaxRTTEntries = 256
	}
	if l.CostWindow <= 0 {
		l.CostWindow = 64
	}
	return l
}

// Host is one dfnode as the scheduler knows it.
type Host struct {
	ID       peer.ID
	Info     protocol.HostInfo
	LastSeen time.Time
	// Booked is upload bandwidth (bit/s) the scheduler assigned to this host
	// since its last announcement and has not seen in its upload rate yet.
	Booked uint64
	// BookedUploads are piece uploads assigned the same way.
	BookedUploads uint32
	// Push sends a message on the host's stream (nil: no stream open);
	// false when the stream is gone or congested.
	Push func(*pb.ScheduleResponse) bool

	rtt   map[peer.ID]time.Duration
	peers map[protocol.TaskID]*Peer
}

// Seed reports whether the host is a seed peer.
func (h *Host) Seed() bool { return h.Info.Seed }

// Peers returns the host's downloads by task.
func (h *Host) Peers() map[protocol.TaskID]*Peer { return h.peers }

// RTT returns the measured round trip to other, if any.
func (h *Host) RTT(other peer.ID) (time.Duration, bool) {
	d, ok := h.rtt[other]
	return d, ok
}

// FreeUpload returns the share (0..1) of upload bandwidth not in use or
// booked; 0.5 when the capacity is unknown.
func (h *Host) FreeUpload() float64 {
	c := h.Info.UploadCapacity
	if c == 0 {
		return 0.5
	}
	used := h.Info.UploadRate + h.Booked
	if used >= c {
		return 0
	}
	return float64(c-used) / float64(c)
}

// FreeSlots returns upload slots not in use or booked (MaxInt when unbounded).
func (h *Host) FreeSlots() int {
	if h.Info.MaxUploads == 0 {
		return math.MaxInt
	}
	used := int(h.Info.InFlight) + int(h.BookedUploads)
	return max(0, int(h.Info.MaxUploads)-used)
}

// Task is one piece of content being distributed.
type Task struct {
	ID     protocol.TaskID
	Kind   pb.TaskKind
	URL    string
	Layout *protocol.Layout // nil while unknown
	// PieceLength is the piece length downloads asked for (URL task IDs
	// include it), known before the layout is.
	PieceLength uint32
	Digest      protocol.Digest
	Priority    uint32
	Tag, App    string
	Created     time.Time
	Updated     time.Time
	BackSourced map[peer.ID]bool // peers allowed to the origin
	// SeedTriggered is when a seed was last asked to fetch the task (zero: never).
	SeedTriggered time.Time
	SeedHost      peer.ID
	// SeedFailedUntil: no seed is triggered again before this time.
	SeedFailedUntil time.Time

	peers map[peer.ID]*Peer
	order []*Peer // for uniform sampling
	edges int     // parent edges of its peers
}

// Peers returns the number of peers.
func (t *Task) Peers() int { return len(t.order) }

// MeanParents returns the mean number of parents of the task's peers.
func (t *Task) MeanParents() float64 {
	if len(t.order) == 0 {
		return 0
	}
	return float64(t.edges) / float64(len(t.order))
}

// Peer returns the peer of host h, if any.
func (t *Task) Peer(h peer.ID) *Peer { return t.peers[h] }

// Sample calls f with up to n peers chosen uniformly at random (without
// repetition), stopping early when f returns false.
func (t *Task) Sample(r *rand.Rand, n int, f func(*Peer) bool) {
	m := len(t.order)
	if n >= m {
		start := 0
		if m > 0 {
			start = r.IntN(m)
		}
		for i := range m {
			if !f(t.order[(start+i)%m]) {
				return
			}
		}
		return
	}
	// Floyd's algorithm: n distinct indexes in O(n).
	seen := make(map[int]struct{}, n)
	for j := m - n; j < m; j++ {
		k := r.IntN(j + 1)
		if _, dup := seen[k]; dup {
			k = j
		}
		seen[k] = struct{}{}
		if !f(t.order[k]) {
			return
		}
	}
}

// Each calls f for every peer.
func (t *Task) Each(f func(*Peer)) {
	for _, p := range t.order {
		f(p)
	}
}

// Scope returns the task's size scope.
func (t *Task) Scope() SizeScope {
	switch {
	case t.Layout == nil:
		return ScopeUnknown
	case t.Layout.ContentLength == 0:
		return ScopeEmpty
	case t.Layout.ContentLength <= 128:
		return ScopeTiny
	case t.Layout.PieceCount() == 1:
		return ScopeSmall
	}
	return ScopeNormal
}

// PieceCount returns the number of pieces (0 while unknown).
func (t *Task) PieceCount() uint32 {
	if t.Layout == nil {
		return 0
	}
	return t.Layout.PieceCount()
}

// SetLayout fixes the task's layout; a different one later is refused.
func (t *Task) SetLayout(l protocol.Layout) error {
	if t.Layout != nil {
		if *t.Layout != l {
			return fmt.Errorf("%w: %d bytes in %d-byte pieces, task has %d in %d", ErrLayoutConflict,
				l.ContentLength, l.PieceLength, t.Layout.ContentLength, t.Layout.PieceLength)
		}
		return nil
	}
	t.Layout = &l
	return nil
}

// Peer is one host's download of one task.
type Peer struct {
	Host  *Host
	Task  *Task
	State PeerState
	// NeedBackToSource: the node must fetch from the origin (triggered seed).
	NeedBackToSource bool
	Priority         uint32
	Created          time.Time
	Updated          time.Time
	// LastPiece is when the peer last reported a verified piece.
	LastPiece time.Time
	// Attempts counts scheduling rounds that found no parent.
	Attempts int
	// Reschedules counts explicit reschedule requests.
	Reschedules int
	// Waiting: the peer has no parent yet and is rescheduled as the task changes.
	Waiting bool
	// Push sends a message on the peer's stream.
	Push func(*pb.ScheduleResponse) bool
	// NextTopUp is the earliest time the peer is offered more parents
	// unasked.
	NextTopUp time.Time

	held      []uint64
	heldCount int
	parents   map[peer.ID]*Peer
	children  int
	blocklist map[peer.ID]bool
	costs     costWindow
	idx       int
}

// Held returns the number of verified pieces the peer holds.
func (p *Peer) Held() int { return p.heldCount }

// Has reports whether the peer holds piece n.
func (p *Peer) Has(n uint32) bool {
	i := int(n / 64)
	return i < len(p.held) && p.held[i]&(1<<(n%64)) != 0
}

// HasMissing reports whether the peer holds a piece that other lacks.
func (p *Peer) HasMissing(other *Peer) bool {
	for i, w := range p.held {
		var o uint64
		if i < len(other.held) {
			o = other.held[i]
		}
		if w&^o != 0 {
			return true
		}
	}
	return false
}

// Complete reports whether the peer holds the whole task.
func (p *Peer) Complete() bool {
	return p.State == PeerSucceeded || (p.Task.Layout != nil && p.heldCount == int(p.Task.PieceCount()))
}

// Parents returns the peer's current parents.
func (p *Peer) Parents() map[peer.ID]*Peer { return p.parents }

// Children returns how many peers use this one as a parent.
func (p *Peer) Children() int { return p.children }

// Blocked reports whether parent is on the peer's blocklist.
func (p *Peer) Blocked(parent peer.ID) bool { return p.blocklist[parent] }

// Block adds parents to the blocklist (bounded: the oldest entries are
// not tracked, a cleared list is fine since blocklists are advisory).
func (p *Peer) Block(ids ...peer.ID) {
	if p.blocklist == nil {
		p.blocklist = make(map[peer.ID]bool)
	}
	for _, id := range ids {
		if len(p.blocklist) >= 256 {
			clear(p.blocklist)
		}
		p.blocklist[id] = true
	}
}

// ClearBlocklist empties the blocklist; false when it was empty.
func (p *Peer) ClearBlocklist() bool {
	if len(p.blocklist) == 0 {
		return false
	}
	clear(p.blocklist)
	return true
}

// SetHeld replaces the pieces held (re-registration after a failover).
func (p *Peer) SetHeld(held []bool) {
	p.held = make([]uint64, (len(held)+63)/64)
	p.heldCount = 0
	for i, h := range held {
		if h {
			p.held[i/64] |= 1 << (i % 64)
			p.heldCount++
		}
	}
}

// AddPiece records a verified piece; false when it was already held or the
// number is out of range.
func (p *Peer) AddPiece(n uint32) bool {
	count := p.Task.PieceCount()
	if n >= count {
		return false
	}
	if len(p.held) == 0 {
		p.held = make([]uint64, (count+63)/64)
	}
	i := int(n / 64)
	if p.held[i]&(1<<(n%64)) != 0 {
		return false
	}
	p.held[i] |= 1 << (n % 64)
	p.heldCount++
	return true
}

// IsAncestorOf reports whether p is reachable upwards from q through parent
// edges (bounded search; an unbounded graph counts as a cycle).
func (p *Peer) IsAncestorOf(q *Peer) bool {
	const limit = 512
	stack := []*Peer{q}
	seen := map[*Peer]bool{q: true}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, par := range cur.parents {
			if par == p {
				return true
			}
			if !seen[par] {
				if len(seen) >= limit {
					return true
				}
				seen[par] = true
				stack = append(stack, par)
			}
		}
	}
	return false
}

// AddCost records the time a child took to get a piece from this peer.
func (p *Peer) AddCost(d time.Duration, window int) { p.costs.add(float64(d.Microseconds()), window) }

// CostStats returns the count, mean and standard deviation (microseconds)
// of the recent piece costs before the last one, and the last one.
func (p *Peer) CostStats() (n int, mean, stddev, last float64) { return p.costs.stats() }

// costWindow is a rolling window of piece costs before the last one.
type costWindow struct {
	v       []float64
	next    int
	last    float64
	hasLast bool
}

func (w *costWindow) add(x float64, size int) {
	if w.hasLast {
		if len(w.v) < size {
			w.v = append(w.v, w.last)
		} else {
			w.v[w.next%len(w.v)] = w.last
			w.next++
		}
	}
	w.last, w.hasLast = x, true
}

func (w *costWindow) stats() (n int, mean, stddev, last float64) {
	n = len(w.v)
	if n == 0 {
		return 0, 0, 0, w.last
	}
	for _, x := range w.v {
		mean += x
	}
	mean /= float64(n)
	for _, x := range w.v {
		stddev += (x - mean) * (x - mean)
	}
	return n, mean, math.Sqrt(stddev / float64(n)), w.last
}
