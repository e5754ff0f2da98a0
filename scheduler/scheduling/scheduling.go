// Package scheduling decides, for one peer at a time, where its pieces
// come from: parents chosen by the evaluator, the origin (within the
// task's back-to-source budget), a seed peer triggered to fetch it first,
// waiting for a source that is already on its way, or a clear failure.
//
// Priority levels follow Dragonfly's LEVEL0–6: LEVEL1 is forbidden;
// LEVEL2 is P2P only (no origin, no seed: fail when nobody has it);
// LEVEL3 sends the requesting peer to the origin itself; LEVEL0/4/5/6
// (the default) trigger a seed peer for the first download when the
// cluster has one, falling back to the origin when seeds fail.
package scheduling

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/protocol/ring"
	"github.com/dragonfly-p2p/df/scheduler/evaluator"
	"github.com/dragonfly-p2p/df/scheduler/resource"
)

// Config tunes scheduling.
type Config struct {
	// CandidateLimit is how many parents one decision returns (default 4).
	CandidateLimit int `yaml:"candidate-limit"`
	// SampleLimit is how many random peers of the task are considered
	// (default 40).
	SampleLimit int `yaml:"sample-limit"`
	// BackToSourceBudget is how many peers of a task may use the origin
	// (default 3; seeds are not counted).
	BackToSourceBudget int `yaml:"back-to-source-budget"`
	// RetryBackToSourceLimit: after this many rounds without a parent, the
	// peer goes to the origin when the budget allows (default 4).
	RetryBackToSourceLimit int `yaml:"retry-back-to-source-limit"`
	// RetryLimit: after this many rounds without a parent, the peer fails
	// (default 10).
	RetryLimit int `yaml:"retry-limit"`
	// SeedTimeout: a triggered seed that has not started by then counts as
	// failed (default 10 s).
	SeedTimeout time.Duration `yaml:"seed-timeout"`
	// SourceStall: a peer fetching from the origin without a new piece for
	// this long no longer holds the others back (default 30 s).
	SourceStall time.Duration `yaml:"source-stall"`
	// SeedFailureTimeout: after a seed failed a task, no seed is triggered
	// for it again for this long (default 30 min).
	SeedFailureTimeout time.Duration `yaml:"seed-failure-timeout"`
	// Acyclic keeps the parent graph a DAG, as Dragonfly does: a peer is
	// never offered one of its descendants. Off by default: pieces only
	// flow from holders to non-holders, so two peers that are each other's
	// parents trade distinct pieces and cannot deadlock, and the swarm
	// benchmarks finish 15–30 % sooner with trading in both directions.
	Acyclic bool `yaml:"acyclic"`
	// ChildrenPerSlot is how many children one upload slot of a parent may
	// be booked for before the parent is left out (default 4). A slot
	// serves one piece at a time, not one child: children ask several
	// parents and take whichever has a slot free, so a parent with 2 slots
	// that could only be given to 2 children would leave the swarm a thin
	// tree in which the host fetching from the origin sends every piece
	// twice.
	ChildrenPerSlot int `yaml:"children-per-slot"`
	// CrossIDC says how a task first reaches an IDC none of whose peers
	// holds any of it (hosts that name no IDC are not affected):
	//   - "source" (default): one peer of that IDC fetches it from the
	//     origin, within the back-to-source budget; otherwise as "gateway";
	//   - "gateway": one peer of that IDC at a time downloads from other
	//     IDCs and the IDC's other peers wait for it;
	//   - "free": parents are chosen by score alone, wherever they are.
	// Under "source" and "gateway" a child whose IDC has a usable parent
	// is only given parents in its own IDC, so the inter-IDC link carries
	// at most the gateway's copy.
	CrossIDC string `yaml:"cross-idc"`
}

// CrossIDC policies (Config.CrossIDC).
const (
	CrossIDCSource  = "source"
	CrossIDCGateway = "gateway"
	CrossIDCFree    = "free"
)

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.CandidateLimit, 16)
	def(&c.SampleLimit, 40)
	def(&c.BackToSourceBudget, 3)
	def(&c.RetryBackToSourceLimit, 4)
	def(&c.RetryLimit, 10)
	def(&c.ChildrenPerSlot, 4)
	if c.CrossIDC == "" {
		c.CrossIDC = CrossIDCSource
	}
	if c.SeedTimeout <= 0 {
		c.SeedTimeout = 10 * time.Second
	}
	if c.SourceStall <= 0 {
		c.SourceStall = 30 * time.Second
	}
	if c.SeedFailureTimeout <= 0 {
		c.SeedFailureTimeout = 30 * time.Minute
	}
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.CandidateLimit > 16:
		return fmt.Errorf("candidate-limit %d above 16 (the protocol's limit)", c.CandidateLimit)
	case c.SampleLimit > 10_000:
		return fmt.Errorf("sample-limit %d above 10000", c.SampleLimit)
	case c.RetryLimit > 0 && c.RetryBackToSourceLimit > c.RetryLimit:
		return fmt.Errorf("retry-back-to-source-limit %d above retry-limit %d", c.RetryBackToSourceLimit, c.RetryLimit)
	case c.CrossIDC != "" && c.CrossIDC != CrossIDCSource && c.CrossIDC != CrossIDCGateway && c.CrossIDC != CrossIDCFree:
		return fmt.Errorf("cross-idc %q: want %q, %q or %q", c.CrossIDC, CrossIDCSource, CrossIDCGateway, CrossIDCFree)
	}
	return nil
}

// Action is what a decision tells the peer.
type Action int

// Actions.
const (
	// Wait: nothing to offer yet (a source is on its way); the peer is
	// scheduled again when the task changes.
	Wait Action = iota
	Parents
	BackToSource
	Empty
	Fail
)

// Decision is the outcome of one scheduling round.
type Decision struct {
	Action  Action
	Parents []*resource.Peer
	Weights []uint32
	// Code and Reason explain a failure (and back-to-source).
	Code   pb.Failure_Code
	Reason string
	// Seed is the seed host to trigger, if any.
	Seed *resource.Host
}

// Scheduler makes decisions. Like the store, it is not safe for concurrent use.
type Scheduler struct {
	cfg   Config
	eval  *evaluator.Evaluator
	store *resource.Store
	rnd   *rand.Rand
	buf   []scored
	local []scored
	full  int // holders the last parents call left out only for being booked full
}

type scored struct {
	p     *resource.Peer
	score float64
}

// New returns a scheduler over store.
func New(store *resource.Store, eval *evaluator.Evaluator, cfg Config) *Scheduler {
	return &Scheduler{cfg: cfg.WithDefaults(), eval: eval, store: store, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// Config returns the configuration in use.
func (s *Scheduler) Config() Config { return s.cfg }

// Schedule decides for child.
func (s *Scheduler) Schedule(child *resource.Peer, now time.Time) Decision {
	t := child.Task
	if t.Scope() == resource.ScopeEmpty {
		return Decision{Action: Empty}
	}
	prio := child.Priority
	if prio == 0 {
		prio = 6
	}
	if prio == 1 {
		return Decision{Action: Fail, Code: pb.Failure_CODE_FORBIDDEN, Reason: "downloads of this task are forbidden (priority LEVEL1)"}
	}
	if child.NeedBackToSource || prio == 3 {
		if d, ok := s.backToSource(child, "the node was asked to fetch from the origin"); ok {
			return d
		}
	}
	switch d := s.parents(child, prio); d.Action {
	case Parents:
		child.Attempts = 0
		return d
	case BackToSource:
		return d
	}
	if s.full > 0 || s.sourceDone(t, child) {
		// Holders exist but every one sampled is booked full: that is
		// capacity, not availability, and their next announcements free
		// it. Waiting costs no attempt; otherwise, once the source has
		// finished, a large swarm's waiting peers use up their attempts in
		// a few seconds and go to the origin or fail (the scale simulation:
		// 1,000 peers, 64 MiB: origin 3×, 155 peers failed). Likewise once
		// a peer that fetched the task from the origin holds all of it and
		// is still connected: the content is in the swarm, and a sample of
		// random peers that found no holder is bad luck, not a reason to
		// load the origin again (10,000 peers, 16 MiB: 9,378 failed).
		return Decision{Action: Wait}
	}
	sourcing := s.sourceOnItsWay(t, now)
	if sourcing && prio != 2 {
		// A source makes progress: its pieces will come. Waiting costs no
		// attempt, so peers do not give up on it and load the origin.
		return Decision{Action: Wait}
	}
	child.Attempts++
	if t.URL == "" && !child.NeedBackToSource && !anyHolder(t, child) {
		// State is soft: holders this scheduler never heard of (it restarted,
		// or they imported before it came up) are in the DHT.
		return Decision{Action: Fail, Code: pb.Failure_CODE_UNAVAILABLE, Reason: "no peer known to this scheduler holds the task and it has no origin: ask the DHT"}
	}
	if prio != 2 && !sourcing && t.URL != "" && !child.Host.Seed() {
		if seed := s.pickSeed(t, now); seed != nil {
			t.SeedTriggered, t.SeedHost = now, seed.ID
			return Decision{Action: Wait, Seed: seed, Reason: "seed peer triggered"}
		}
	}
	if prio != 2 && t.URL != "" && (!sourcing || child.Attempts > s.cfg.RetryBackToSourceLimit) {
		if d, ok := s.backToSource(child, "no parent holds the task"); ok {
			return d
		}
	}
	if child.Attempts > s.cfg.RetryLimit && child.ClearBlocklist() {
		// Holders exist but the child blocked them all (slow or failed
		// transfers): give them one more chance before failing.
		child.Attempts = s.cfg.RetryBackToSourceLimit
		return Decision{Action: Wait}
	}
	if child.Attempts > s.cfg.RetryLimit {
		code, reason := pb.Failure_CODE_RETRY_LIMIT, fmt.Sprintf("no parent after %d scheduling rounds", child.Attempts-1)
		if !sourcing && t.URL == "" {
			code, reason = pb.Failure_CODE_NOT_FOUND, "no peer holds the task and it has no origin"
		}
		if prio == 2 {
			reason += " (priority LEVEL2: P2P only)"
		}
		return Decision{Action: Fail, Code: code, Reason: reason}
	}
	return Decision{Action: Wait}
}

// anyHolder reports whether a peer other than child holds part of the task.
func anyHolder(t *resource.Task, child *resource.Peer) bool {
	found := false
	t.Each(func(p *resource.Peer) {
		if p != child && (p.Held() > 0 || p.State == resource.PeerSucceeded) && p.State != resource.PeerFailed && p.State != resource.PeerLeft {
			found = true
		}
	})
	return found
}

// More offers a running peer additional parents (Parents, or Wait when
// there is none to add). Unlike Schedule it never counts as a failed
// attempt nor sends the peer to the origin: the peer already has parents.
func (s *Scheduler) More(child *resource.Peer) Decision {
	if d := s.parents(child, child.Priority); d.Action == Parents {
		return d
	}
	return Decision{Action: Wait}
}

// sourceOnItsWay reports whether a seed was triggered recently or some
// peer fetching from the origin is making progress (a piece within
// SourceStall, or started less than SourceStall ago).
func (s *Scheduler) sourceOnItsWay(t *resource.Task, now time.Time) bool {
	if !t.SeedTriggered.IsZero() && now.Sub(t.SeedTriggered) < s.cfg.SeedTimeout {
		return true
	}
	progressing := func(p *resource.Peer) bool {
		if p == nil || p.State.Done() {
			return false
		}
		last := p.LastPiece
		if last.Before(p.Created) {
			last = p.Created
		}
		return now.Sub(last) < s.cfg.SourceStall
	}
	for id := range t.BackSourced {
		if progressing(t.Peer(id)) {
			return true
		}
	}
	return t.SeedHost != "" && progressing(t.Peer(t.SeedHost))
}

// sourceDone reports whether a peer that fetched t from the origin (or
// the triggered seed) completed it, its host is still connected, it is not a
// bad parent (its last piece cost far above its mean: a source that became
// slow must not hold the swarm back forever; testnet's slow-peer fault), and
// child has neither blocklisted it nor already has it as a parent (a child
// that asks again while it downloads from the source gains nothing by
// waiting for it).
func (s *Scheduler) sourceDone(t *resource.Task, child *resource.Peer) bool {
	for id := range t.BackSourced {
		if _, already := child.Parents()[id]; already {
			continue // the child has it and still asks: waiting on it is not enough
		}
		if p := t.Peer(id); p != nil && p.State == resource.PeerSucceeded && p.Host.Push != nil && !child.Blocked(id) && !s.eval.IsBadParent(p) {
			return true
		}
	}
	return false
}

// backToSource grants the origin within the task's budget (seeds always).
func (s *Scheduler) backToSource(child *resource.Peer, reason string) (Decision, bool) {
	t := child.Task
	if t.URL == "" && !child.NeedBackToSource {
		return Decision{}, false
	}
	if !child.Host.Seed() && !t.BackSourced[child.Host.ID] && s.budgetUsed(t) >= s.cfg.BackToSourceBudget {
		return Decision{}, false
	}
	t.BackSourced[child.Host.ID] = true
	child.State = resource.PeerBackToSource
	return Decision{Action: BackToSource, Reason: reason}, true
}

func (s *Scheduler) budgetUsed(t *resource.Task) int {
	n := 0
	for id := range t.BackSourced {
		if p := t.Peer(id); p == nil || !p.Host.Seed() {
			n++
		}
	}
	return n
}

// pickSeed chooses the seed host for a task by consistent hash over the
// live seeds with stream and free capacity.
func (s *Scheduler) pickSeed(t *resource.Task, now time.Time) *resource.Host {
	if now.Before(t.SeedFailedUntil) {
		return nil
	}
	var ids []peer.ID
	s.store.Hosts(func(h *resource.Host) {
		if h.Seed() && h.Push != nil {
			ids = append(ids, h.ID)
		}
	})
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	for _, id := range ring.New(ids, 0).Owners(t.ID, len(ids)) {
		if h := s.store.Host(id); h != nil && h.FreeSlots() > 0 {
			return h
		}
	}
	return nil
}

// ReplaceSource picks a running peer of t to fetch from the origin when
// the task's source failed or left and no other source is on its way:
// running peers only wait for new pieces from their parents, so without
// this they would stall. It returns nil when none may (budget, no URL,
// priority LEVEL2, a source still on its way, nobody running).
func (s *Scheduler) ReplaceSource(t *resource.Task, now time.Time) *resource.Peer {
	if t.URL == "" || s.sourceOnItsWay(t, now) {
		return nil
	}
	var best *resource.Peer
	t.Each(func(p *resource.Peer) {
		if p.State != resource.PeerRunning || p.Complete() || p.Push == nil || p.Priority == 2 || p.Priority == 1 {
			return
		}
		if best == nil || p.Held() > best.Held() {
			best = p
		}
	})
	if best == nil {
		return nil
	}
	if _, ok := s.backToSource(best, "the task's source left"); !ok {
		return nil
	}
	return best
}

// SeedFailed remembers that the task's seed failed it.
func (s *Scheduler) SeedFailed(t *resource.Task, now time.Time) {
	t.SeedFailedUntil = now.Add(s.cfg.SeedFailureTimeout)
	t.SeedTriggered = time.Time{}
}

// usable reports whether parent may serve child.
func (s *Scheduler) usable(child, parent *resource.Peer) bool {
	switch {
	case parent == child, parent.Host == child.Host:
		return false
	case parent.Held() == 0 && parent.State != resource.PeerSucceeded:
		return false
	case parent.State != resource.PeerSucceeded && !parent.HasMissing(child):
		// It holds nothing the child lacks (yet): offering it would count
		// as finding parents and keep a child whose missing pieces only a
		// blocklisted peer holds from ever reaching the origin (testnet's
		// slow-peer fault). It is offered once it has something new.
		return false
	case parent.State == resource.PeerFailed || parent.State == resource.PeerLeft:
		return false
	case parent.Host.Push == nil && parent.Host.Info.Addrs == nil:
		return false // never announced: no address to give
	case child.Blocked(parent.Host.ID):
		return false
	case s.eval.IsBadParent(parent):
		return false
	case s.cfg.Acyclic && child.IsAncestorOf(parent):
		return false // parent downloads from child: keep the graph acyclic
	}
	if _, already := child.Parents()[parent.Host.ID]; already {
		return false
	}
	if s.saturated(parent.Host, s.poor(child)) {
		s.full++ // a holder that would do but is booked full
		return false
	}
	return true
}

// parentStep is the most parents one decision adds, so that top-up rounds
// share the parents' bookings out a few at a time instead of the first
// children to ask taking them all (see saturated).
const parentStep = 4

// poor reports whether child has fewer than half of CandidateLimit
// parents and fewer than 3/4 of its task's mean (see saturated).
func (s *Scheduler) poor(child *resource.Peer) bool {
	n := float64(len(child.Parents()))
	return n < float64(s.cfg.CandidateLimit/2) && n < 0.75*child.Task.MeanParents()
}

// saturated reports whether h's upload slots are booked for as many
// children as they can serve in turn (uploads in flight count too); for a
// poor child, only when booked for twice that many. Bookings are released
// by the parents' next announcements (30 s apart): in the 16-host swarm the
// children that asked first took them all (13–16 parents each) and those
// that asked a moment later kept 3–5 until then, received 1–4 pieces per
// 3 s where the others received 5–9, and finished 5–20 s after them
// (efficiency 0.43–0.60 in 2 to 4 of every 6 runs). The doubled booking
// lets a child that is behind its task's mean catch up to half the limit;
// while the task's children are alike nobody is poor. The flow simulation
// does not reproduce the starvation and sees only this rule's cost
// (docs/benchmarks.md, "Children that asked late").
func (s *Scheduler) saturated(h *resource.Host, poor bool) bool {
	if h.Info.MaxUploads == 0 {
		return false
	}
	used := int(h.Info.InFlight) + int(h.BookedUploads)
	limit := s.cfg.ChildrenPerSlot * int(h.Info.MaxUploads)
	if poor {
		limit *= 2
	}
	return used >= limit
}

// parents samples, filters and ranks candidate parents for child, books
// the load of the chosen ones and records the edges.
func (s *Scheduler) parents(child *resource.Peer, prio uint32) Decision {
	t := child.Task
	want := s.cfg.CandidateLimit
	switch t.Scope() {
	case resource.ScopeTiny, resource.ScopeSmall:
		want = 1
	}
	want = min(want-len(child.Parents()), parentStep)
	s.full = 0
	if want <= 0 {
		return Decision{Action: Wait}
	}
	s.buf = s.buf[:0]
	t.Sample(s.rnd, s.cfg.SampleLimit, func(p *resource.Peer) bool {
		if s.usable(child, p) {
			s.buf = append(s.buf, scored{p, s.eval.Score(child, p)})
		}
		return true
	})
	if len(s.buf) == 0 {
		return Decision{Action: Wait}
	}
	if d, ok := s.keepInIDC(child, prio); !ok {
		return d
	}
	slices.SortFunc(s.buf, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	n := min(want, len(s.buf))
	d := Decision{Action: Parents, Parents: make([]*resource.Peer, n), Weights: make([]uint32, n)}
	var pieceLen uint64 = 4 << 20
	if t.Layout != nil {
		pieceLen = uint64(t.Layout.PieceLength)
	}
	for i := range n {
		p := s.buf[i].p
		d.Parents[i] = p
		free := p.Host.FreeUpload()
		d.Weights[i] = uint32(max(1, min(1000, free*1000)))
		// Book one piece per second per parent and one upload slot: the
		// parent's next announcement replaces the estimate with the truth.
		s.store.AddEdge(child, p, pieceLen*8, 1)
	}
	if child.State == resource.PeerPending {
		child.State = resource.PeerRunning
	}
	return d
}

// keepInIDC applies Config.CrossIDC to the candidates in s.buf: it keeps
// only the child's own IDC when any of them is usable; otherwise the child
// waits for a peer of its IDC that holds pieces, fetches from the origin or
// already pulls from another IDC, or becomes that peer: it goes to the
// origin ("source", budget permitting) or takes the other IDCs' parents.
// ok is false when d is the decision.
func (s *Scheduler) keepInIDC(child *resource.Peer, prio uint32) (d Decision, ok bool) {
	idc := child.Host.Info.IDC
	if idc == "" || s.cfg.CrossIDC == CrossIDCFree {
		return Decision{}, true
	}
	s.local = s.local[:0]
	for _, c := range s.buf {
		if strings.EqualFold(c.p.Host.Info.IDC, idc) {
			s.local = append(s.local, c)
		}
	}
	if len(s.local) > 0 {
		s.buf, s.local = s.local, s.buf
		return Decision{}, true
	}
	// The sample held nobody of the child's IDC: look through the whole
	// task (rare: only while an IDC has few holders) for a usable parent
	// there, or for a peer that will bring the task in.
	t := child.Task
	waitFor := false
	t.Sample(s.rnd, t.Peers(), func(q *resource.Peer) bool { // all, from a random start
		switch {
		case q == child, !strings.EqualFold(q.Host.Info.IDC, idc),
			q.State == resource.PeerFailed, q.State == resource.PeerLeft, child.Blocked(q.Host.ID), s.eval.IsBadParent(q):
		case s.usable(child, q):
			s.local = append(s.local, scored{q, s.eval.Score(child, q)})
		case q.Held() > 0, q.State == resource.PeerBackToSource:
			waitFor = true
		default:
			for _, p := range q.Parents() {
				if !strings.EqualFold(p.Host.Info.IDC, idc) {
					waitFor = true // the IDC's gateway
					break
				}
			}
		}
		return len(s.local) < s.cfg.CandidateLimit
	})
	if len(s.local) > 0 {
		s.buf, s.local = s.local, s.buf
		return Decision{}, true
	}
	if waitFor {
		s.full++ // capacity on its way, not a missing source: no attempt used
		return Decision{Action: Wait}, false
	}
	if s.cfg.CrossIDC == CrossIDCSource && prio != 2 {
		if d, ok := s.backToSource(child, "first copy of the task in IDC "+idc); ok {
			return d, false
		}
	}
	return Decision{}, true // the child is its IDC's gateway
}
