package upload

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
)

// Super-seeding: a host that fetched pieces from the origin is, for a
// while, the only holder of them, and its uplink is as fast as its origin
// download at best. If it announced every such piece to every child, several
// children would ask it for the same newest pieces and its uplink would
// carry each of them several times, so the swarm could never finish before
// that uplink had sent the file several times (the shaped swarm spent its
// time exactly there). Instead each piece the host got from the origin is
// announced first to one child only (the subscriber with the fewest such
// pieces still to fetch); that child spreads it to the others. The piece is
// announced to every child when its designated child did not ask for it in
// time, when that child left, some time after it was sent, and when the
// task is complete (the host is then an ordinary seed).
//
// "In time" counts only while the designated child has no request waiting
// here for an upload slot: a child asks over a few streams, one piece at a
// time, so while its streams wait here it cannot ask for anything else.
// (Requests that find a free slot change nothing: a host whose slots are
// never full super-seeds as before.)
// Timing it from the designation opened pieces whenever this host's slots
// were busy (a piece then took ~1.5 s to go out), every child then asked
// this host for them, its uplink carried each piece 1.2–2.4 times, and the
// swarm fell behind the origin for good (256 MiB runs ending at 111–121 s
// instead of ~95 s; docs/benchmarks.md, "Super-seeding held; twelve uploads").
const (
	// designeeWait: a designated child that has had no request waiting
	// here for this long without asking for its piece loses the exclusivity.
	designeeWait = time.Second
	// designeeMaxWait: it loses it this long after the designation, busy
	// or not (a child whose streams are stuck here).
	designeeMaxWait = 5 * time.Second
	// spreadWait: this long after a piece first left the host, every
	// child may ask for it (the designated child had time to spread it).
	spreadWait = 8 * time.Second
	// maxSeedTasks bounds tasks with super-seeding state.
	maxSeedTasks = 64
)

// superSeed holds the super-seeding state of every task with pieces from
// the origin.
type superSeed struct {
	mu    sync.Mutex
	tasks map[protocol.TaskID]*seedTask
	now   func() time.Time
}

// seedTask is one task's super-seeding state.
type seedTask struct {
	created time.Time
	pieces  map[uint32]*seedPiece
	subs    map[peer.ID]*seedSub
	wake    chan struct{} // closed (and replaced) when a held piece may be revealed
}

type seedPiece struct {
	designee   peer.ID
	designated time.Time
	requested  bool
	sent       time.Time // when it was first handed a slot (zero: never)
	open       bool      // announced to every child
}

type seedSub struct {
	refs        int
	outstanding int       // pieces designated to it and not yet asked for
	assigned    int       // pieces designated to it in all
	active      int       // its requests waiting for an upload slot
	idleSince   time.Time // when active last fell to 0
}

func newSuperSeed() *superSeed {
	return &superSeed{tasks: make(map[protocol.TaskID]*seedTask), now: time.Now}
}

// fromOrigin records that piece n of task was fetched from the origin.
func (s *superSeed) fromOrigin(id protocol.TaskID, n uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil {
		if len(s.tasks) >= maxSeedTasks {
			s.evictLocked()
		}
		t = &seedTask{created: s.now(), pieces: make(map[uint32]*seedPiece), subs: make(map[peer.ID]*seedSub), wake: make(chan struct{})}
		s.tasks[id] = t
	}
	if _, ok := t.pieces[n]; !ok {
		t.pieces[n] = &seedPiece{}
	}
}

// evictLocked drops the oldest task without subscribers (or, when every
// task has some, the oldest).
func (s *superSeed) evictLocked() {
	var victim *seedTask
	var vid protocol.TaskID
	for id, t := range s.tasks {
		better := victim == nil ||
			(len(t.subs) == 0) != (len(victim.subs) == 0) && len(t.subs) == 0 ||
			(len(t.subs) == 0) == (len(victim.subs) == 0) && t.created.Before(victim.created)
		if better {
			victim, vid = t, id
		}
	}
	if victim != nil {
		s.wakeLocked(victim)
		delete(s.tasks, vid)
	}
}

// forget drops a task's state (complete, deleted): its pieces are open to
// everyone.
func (s *superSeed) forget(id protocol.TaskID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tasks[id]; t != nil {
		s.wakeLocked(t)
		delete(s.tasks, id)
	}
}

func (s *superSeed) wakeLocked(t *seedTask) {
	close(t.wake)
	t.wake = make(chan struct{})
}

// subscribe registers a pieces-sync subscriber of task; the returned
// function unregisters it.
func (s *superSeed) subscribe(id protocol.TaskID, p peer.ID) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil {
		// No origin piece yet; one may come while p follows the task.
		if len(s.tasks) >= maxSeedTasks {
			s.evictLocked()
		}
		t = &seedTask{created: s.now(), pieces: make(map[uint32]*seedPiece), subs: make(map[peer.ID]*seedSub), wake: make(chan struct{})}
		s.tasks[id] = t
	}
	sub := t.subs[p]
	if sub == nil {
		sub = &seedSub{}
		t.subs[p] = sub
	}
	sub.refs++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.tasks[id] != t {
			return
		}
		if sub.refs--; sub.refs > 0 {
			return
		}
		delete(t.subs, p)
		for _, pc := range t.pieces {
			if pc.designee == p && !pc.requested {
				pc.open = true // its child left: anyone may have it
			}
		}
		s.wakeLocked(t)
	}
}

// visible reports whether subscriber p may be told about piece n of task
// now, and returns a channel closed when the answer may change plus the
// time after which it should be asked again (zero: only on the channel).
func (s *superSeed) visible(id protocol.TaskID, n uint32, p peer.ID) (bool, <-chan struct{}, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil {
		return true, nil, time.Time{}
	}
	pc := t.pieces[n]
	if pc == nil || pc.open {
		return true, nil, time.Time{}
	}
	now := s.now()
	if pc.designee != "" {
		if _, alive := t.subs[pc.designee]; !alive {
			pc.designee = ""
		}
	}
	switch {
	case pc.designee == "":
		s.designateLocked(t, pc, now)
	case !pc.requested && !now.Before(t.askBy(pc, now)),
		!pc.sent.IsZero() && now.Sub(pc.sent) > spreadWait:
		pc.open = true
		if !pc.requested {
			if sub := t.subs[pc.designee]; sub != nil && sub.outstanding > 0 {
				sub.outstanding--
			}
		}
		s.wakeLocked(t)
		return true, nil, time.Time{}
	}
	if pc.designee == p {
		return true, nil, time.Time{}
	}
	recheck := t.askBy(pc, now)
	if pc.requested {
		recheck = time.Time{}
		if !pc.sent.IsZero() {
			recheck = pc.sent.Add(spreadWait)
		}
	}
	return false, t.wake, recheck
}

// askBy is when pc's designated child, not having asked for it, loses it:
// designeeWait after the later of the designation and the end of its last
// wait for a slot here; while it has requests waiting, no sooner than
// designeeWait from now (checked again then); designeeMaxWait after the
// designation at the latest.
func (t *seedTask) askBy(pc *seedPiece, now time.Time) time.Time {
	from := pc.designated
	if sub := t.subs[pc.designee]; sub != nil {
		switch {
		case sub.active > 0:
			from = now
		case sub.idleSince.After(from):
			from = sub.idleSince
		}
	}
	latest := pc.designated.Add(designeeMaxWait)
	if at := from.Add(designeeWait); at.Before(latest) {
		return at
	}
	return latest
}

// designateLocked gives piece pc to the subscriber with the fewest
// designated pieces still to fetch, then the fewest designated in all, so
// that every child gets an equal share to spread (none: the piece is open).
func (s *superSeed) designateLocked(t *seedTask, pc *seedPiece, now time.Time) {
	var best peer.ID
	var bestSub *seedSub
	for id, sub := range t.subs {
		switch {
		case bestSub == nil,
			sub.outstanding < bestSub.outstanding,
			sub.outstanding == bestSub.outstanding && sub.assigned < bestSub.assigned,
			sub.outstanding == bestSub.outstanding && sub.assigned == bestSub.assigned && id < best:
			best, bestSub = id, sub
		}
	}
	if bestSub == nil {
		pc.open = true
		return
	}
	pc.designee, pc.designated, pc.requested = best, now, false
	bestSub.outstanding++
	bestSub.assigned++
	s.wakeLocked(t)
}

// requested records that p asked for piece n of task (it is about to be
// sent, or to wait for a slot).
func (s *superSeed) requested(id protocol.TaskID, n uint32, p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil {
		return
	}
	pc := t.pieces[n]
	if pc == nil {
		return
	}
	if pc.designee == p && !pc.requested {
		pc.requested = true
		if sub := t.subs[p]; sub != nil && sub.outstanding > 0 {
			sub.outstanding--
		}
	}
}

// begin records that a request of p for a piece of task waits for an
// upload slot; the returned function records the end of the wait.
func (s *superSeed) begin(id protocol.TaskID, p peer.ID) (end func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil || t.subs[p] == nil {
		return func() {}
	}
	sub := t.subs[p]
	sub.active++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if sub.active--; sub.active == 0 {
			sub.idleSince = s.now()
		}
	}
}

// sending records that piece n of task got an upload slot.
func (s *superSeed) sending(id protocol.TaskID, n uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tasks[id]; t != nil {
		if pc := t.pieces[n]; pc != nil && pc.sent.IsZero() {
			pc.sent = s.now()
		}
	}
}
