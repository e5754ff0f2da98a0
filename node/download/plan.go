package download

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
)

// plan is the shared piece-picking state of one download: which pieces are
// missing, who has which, what is in flight. Parent workers and source
// workers block in its pick methods until there is something for them.
type plan struct {
	mu   sync.Mutex
	cond *sync.Cond

	id     protocol.TaskID
	self   peer.ID
	layout protocol.Layout
	count  uint32

	have    []bool            // verified locally
	missing []uint32          // unverified piece numbers (unordered)
	index   []int32           // piece → position in missing, -1 when verified
	digest  []protocol.Digest // trusted digest per piece (zero: none yet)
	rarity  []uint16          // parents announcing the piece
	flight  []uint8           // workers fetching the piece
	started []time.Time       // when the oldest in-flight fetch began

	parents map[peer.ID]*parentState
	cursor  uint32 // a streaming reader's position: pieces near it go first
	window  uint32

	durations []time.Duration // recent piece fetch times (for hedging)
	lastHave  time.Time       // when a piece was last verified (or the plan made)
	firstSeen time.Time       // when a piece was first verified here or announced (zero: none yet)
	closed    bool

	completeGrace time.Duration // see completeAnnounceGrace
}

// completeAnnounceGrace is how long a parent whose pieces-sync header said
// "complete" counts as holding every piece before its first announcement
// arrives: the origin fetchers wait for it instead of racing the parent for
// pieces it is about to announce (a busy host delivers the announcement
// after the header by milliseconds, and a one-piece layer went to the
// origin a second time in that gap). A parent that announces nothing in
// this time counts for nothing, as before.
const completeAnnounceGrace = 2 * time.Second

// parentState is what the plan knows of one parent.
type parentState struct {
	id       peer.ID
	has      []bool
	complete bool
	alive    bool
	lastNew  time.Time // last time it announced a new piece
	dropped  bool
	strikes  int // slow pieces in a row (see slowPiece)
	added    time.Time
	spoke    bool // announced at least one piece
}

func newPlan(id protocol.TaskID, self peer.ID, layout protocol.Layout, window uint32) *plan {
	n := layout.PieceCount()
	p := &plan{
		id: id, self: self, layout: layout, count: n,
		have:     make([]bool, n),
		missing:  make([]uint32, n),
		index:    make([]int32, n),
		digest:   make([]protocol.Digest, n),
		rarity:   make([]uint16, n),
		flight:   make([]uint8, n),
		started:  make([]time.Time, n),
		parents:  make(map[peer.ID]*parentState),
		window:   window,
		lastHave: time.Now(),

		completeGrace: completeAnnounceGrace,
	}
	for i := range n {
		p.missing[i] = i
		p.index[i] = int32(i)
	}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// markHave records a locally verified piece.
func (p *plan) markHave(n uint32, d protocol.Digest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.markHaveLocked(n, d)
}

func (p *plan) markHaveLocked(n uint32, d protocol.Digest) {
	if n >= p.count || p.have[n] {
		return
	}
	p.have[n] = true
	p.digest[n] = d
	p.lastHave = time.Now()
	p.seenLocked(p.lastHave)
	i := p.index[n]
	last := p.missing[len(p.missing)-1]
	p.missing[i] = last
	p.index[last] = i
	p.missing = p.missing[:len(p.missing)-1]
	p.index[n] = -1
	p.cond.Broadcast()
}

// done reports whether every piece is verified.
func (p *plan) done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.missing) == 0
}

func (p *plan) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *plan) setCursor(n uint32) {
	p.mu.Lock()
	p.cursor = n
	p.mu.Unlock()
}

// addParent registers a parent from its sync header.
func (p *plan) addParent(id peer.ID, complete bool) *parentState {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	ps := &parentState{id: id, has: make([]bool, p.count), complete: complete, alive: true, lastNew: now, added: now}
	p.parents[id] = ps
	p.cond.Broadcast()
	return ps
}

// announce records pieces a parent holds. A digest that contradicts the
// trusted one reports conflict: the parent lies (or holds other content).
// A dropped parent's announcements are ignored: its pieces-sync stream may
// still deliver some after a piece worker dropped it, and counting them
// would leave pieces looking held by nobody there (the origin fetchers
// wait for pieces no parent holds: a lying parent dropped mid-stream
// stalled a download for good).
func (p *plan) announce(ps *parentState, pieces []protocol.PieceInfo) (conflict bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ps.dropped {
		return false
	}
	for _, pi := range pieces {
		n := pi.Number
		if ps.has[n] {
			continue
		}
		if !p.digest[n].IsZero() && p.digest[n] != pi.Digest {
			return true
		}
		p.digest[n] = pi.Digest // trust on first announcement
		ps.has[n] = true
		if p.rarity[n] < ^uint16(0) {
			p.rarity[n]++
		}
	}
	if len(pieces) > 0 {
		ps.spoke = true
		ps.lastNew = time.Now()
		p.seenLocked(ps.lastNew)
	}
	p.cond.Broadcast()
	return false
}

// seenLocked records that a piece exists somewhere by now.
func (p *plan) seenLocked(now time.Time) {
	if p.firstSeen.IsZero() {
		p.firstSeen = now
	}
}

// setComplete marks a parent as holding everything.
func (p *plan) setComplete(ps *parentState) {
	p.mu.Lock()
	ps.complete = !ps.dropped
	if ps.complete {
		p.seenLocked(time.Now())
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// dropParent forgets a parent (failed, lied, left).
func (p *plan) dropParent(ps *parentState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ps.dropped {
		return
	}
	ps.dropped, ps.alive = true, false
	for n, h := range ps.has {
		if h && p.rarity[n] > 0 {
			p.rarity[n]--
		}
	}
	delete(p.parents, ps.id)
	p.cond.Broadcast()
}

// isDropped reports whether ps was dropped.
func (p *plan) isDropped(ps *parentState) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ps.dropped
}

// stranded reports whether the plan has made no progress for at least
// idle while some missing piece is neither held by a connected parent nor
// being fetched: the parents it has cannot finish the download.
func (p *plan) stranded(idle time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || time.Since(p.lastHave) < idle {
		return false
	}
	for _, n := range p.missing {
		if p.rarity[n] == 0 && p.flight[n] == 0 {
			return true
		}
	}
	return false
}

// liveParents counts parents still in use.
func (p *plan) liveParents() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parents)
}

// pickForParent blocks until ps holds a piece worth fetching and returns it
// (marked in flight), or returns false when the plan is done or closed or
// ps was dropped.
func (p *plan) pickForParent(ps *parentState) (uint32, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.closed || ps.dropped || len(p.missing) == 0 {
			return 0, false
		}
		if n, ok := p.chooseLocked(func(n uint32) bool { return ps.has[n] }); ok {
			p.startLocked(n)
			return n, true
		}
		p.cond.Wait()
	}
}

// chooseLocked picks among missing pieces that eligible accepts: pieces near
// the streaming cursor first, then the rarest, ties broken at random. A
// piece already in flight is only chosen (hedged) when its fetch runs long.
func (p *plan) chooseLocked(eligible func(uint32) bool) (uint32, bool) {
	// Streaming window first: the rarest piece in it, ties broken at random
	// rather than in order, so that many peers streaming the same content
	// from one parent fetch different pieces and can trade them.
	if p.cursor < p.count {
		end := min(p.count, p.cursor+p.window)
		best, found, ties := uint32(0), false, 0
		for n := p.cursor; n < end; n++ {
			if p.have[n] || p.flight[n] != 0 || !eligible(n) {
				continue
			}
			switch {
			case !found || p.rarity[n] < p.rarity[best]:
				best, found, ties = n, true, 1
			case p.rarity[n] == p.rarity[best]:
				ties++
				if rand.IntN(ties) == 0 {
					best = n
				}
			}
		}
		if found {
			return best, true
		}
	}
	const sample = 256
	best, found, seen := uint32(0), false, 0
	m := len(p.missing)
	start := 0
	if m > 0 {
		start = rand.IntN(m)
	}
	for i := 0; i < m && seen < sample; i++ {
		n := p.missing[(start+i)%m]
		if p.flight[n] > 0 || !eligible(n) {
			continue
		}
		seen++
		if !found || p.rarity[n] < p.rarity[best] {
			best, found = n, true
		}
	}
	if found {
		return best, true
	}
	// Endgame: hedge the longest-running fetch of an eligible piece.
	hedge := p.hedgeAfterLocked()
	now := time.Now()
	for _, n := range p.missing {
		if p.flight[n] == 1 && eligible(n) && now.Sub(p.started[n]) > hedge {
			return n, true
		}
	}
	return 0, false
}

// slowPiece records that a piece from ps took took and reports whether ps
// is now too slow to keep: slowStrikes pieces in a row each took more than
// slowFactor times the download's median piece time and at least slowMin.
// The slow piece itself is already in the durations (finish), so a parent
// that is the download's only source sets its own median and never counts
// as slow.
func (p *plan) slowPiece(ps *parentState, took time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.durations) < 4 || took < slowMin {
		ps.strikes = 0
		return false
	}
	if took <= slowFactor*p.medianLocked() {
		ps.strikes = 0
		return false
	}
	ps.strikes++
	return ps.strikes >= slowStrikes
}

// hedgeAfterLocked: a fetch running longer than 3× the median piece time
// (at least 2 s) may be duplicated from another parent.
func (p *plan) hedgeAfterLocked() time.Duration {
	if len(p.durations) == 0 {
		return 10 * time.Second
	}
	return max(2*time.Second, 3*p.medianLocked())
}

// medianLocked is the median of the recent piece fetch times (at least one).
func (p *plan) medianLocked() time.Duration {
	d := slices.Clone(p.durations)
	slices.Sort(d)
	return d[len(d)/2]
}

func (p *plan) startLocked(n uint32) {
	if p.flight[n] == 0 {
		p.started[n] = time.Now()
	}
	p.flight[n]++
}

// finish ends a fetch of piece n. ok with a digest marks it verified.
func (p *plan) finish(n uint32, ok bool, d protocol.Digest, took time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.flight[n] > 0 {
		p.flight[n]--
	}
	if ok {
		p.markHaveLocked(n, d)
		if len(p.durations) >= 64 {
			p.durations = p.durations[1:]
		}
		p.durations = append(p.durations, took)
	}
	p.cond.Broadcast()
}

// sourcePolicy decides which pieces this node fetches from the origin.
type sourcePolicy struct {
	// stall: an owner that announced nothing new for this long is presumed
	// stuck and its pieces are taken over.
	stall time.Duration
	// all: fetch any piece nobody connected holds (a scheduler decided who
	// goes to the origin), instead of only the ones this node owns.
	all bool
}

// pickForSource blocks until a piece should come from the origin: nobody
// connected holds it, nobody fetches it, and this node owns it among the
// incomplete peers (rendezvous hashing spreads origin fetches over them so
// that simultaneous starters fetch each piece about once), or its owner
// looks stuck. Returns false when done or closed.
func (p *plan) pickForSource(pol sourcePolicy) (uint32, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.closed || len(p.missing) == 0 {
			return 0, false
		}
		owners := p.sourcingPeersLocked(time.Now(), pol)
		// In order from the streaming cursor (or the start), wrapping:
		// the pieces then come off one range in the order readers and
		// peers downloading behind this node want them.
		start := p.cursor
		if start >= p.count {
			start = 0
		}
		for i := range p.count {
			n := (start + i) % p.count
			if p.sourceableLocked(n, pol, owners) {
				p.startLocked(n)
				return n, true
			}
		}
		p.cond.Wait()
	}
}

// claimForSource marks piece n in flight for the origin when pickForSource
// would choose it now (missing, nobody connected holds or fetches it, and
// it is this node's to fetch); it never waits.
func (p *plan) claimForSource(n uint32, pol sourcePolicy) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.sourceableLocked(n, pol, p.sourcingPeersLocked(time.Now(), pol)) {
		return false
	}
	p.startLocked(n)
	return true
}

// sourceRunEnd returns the end (exclusive) of the run of pieces from n on
// that are this node's to fetch from the origin now: n+1 when the piece
// after n is not.
func (p *plan) sourceRunEnd(n uint32, pol sourcePolicy) uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	owners := p.sourcingPeersLocked(time.Now(), pol)
	end := n + 1
	for end < p.count && p.sourceableLocked(end, pol, owners) {
		end++
	}
	return end
}

func (p *plan) sourceableLocked(n uint32, pol sourcePolicy, owners []peer.ID) bool {
	if p.closed || n >= p.count || p.have[n] || p.flight[n] != 0 || p.rarity[n] != 0 {
		return false
	}
	return len(owners) > 0 && (pol.all || p.owner(n, owners) == p.self)
}

// sourcingPeersLocked are the peers that may fetch from the origin: this
// node and every live incomplete parent that is still making progress.
// An owner's stall clock starts no sooner than the first piece anywhere:
// every owner's first piece comes over the same shared origin link, so
// they all arrive late together, and an owner is not behind the others
// until they have started to announce.
//
// None may while a parent that said it is complete has not announced its
// pieces yet (for up to completeGrace): they are about to be held.
func (p *plan) sourcingPeersLocked(now time.Time, pol sourcePolicy) []peer.ID {
	for _, ps := range p.parents {
		if ps.complete && !ps.spoke && now.Sub(ps.added) < p.completeGrace {
			return nil
		}
	}
	out := []peer.ID{p.self}
	stall := p.stallAfterLocked(now, pol.stall)
	for id, ps := range p.parents {
		progress := ps.lastNew
		if p.firstSeen.After(progress) {
			progress = p.firstSeen
		}
		if !ps.complete && ps.alive && now.Sub(progress) < stall {
			out = append(out, id)
		}
	}
	return out
}

// stallAfterLocked is how long an owner may go without announcing a new
// piece before its pieces are taken over: base, or longer when this node's
// own fetches show that a piece takes longer than that (a slow origin link
// shared by many fetchers: taking pieces over there only splits the link
// further and fetches them twice): twice the longest recent fetch or twice
// the age of the oldest fetch still in flight, at most maxStallFactor ×
// base; that longest wait while no piece exists anywhere yet (a node that
// owns none has no fetch of its own to measure the origin link by, and
// took over every owner whose first piece was slower than base: 4 MiB
// pieces over a link shared by 16 owners).
func (p *plan) stallAfterLocked(now time.Time, base time.Duration) time.Duration {
	if p.firstSeen.IsZero() {
		return maxStallFactor * base
	}
	d := base
	for _, t := range p.durations {
		d = max(d, 2*t)
	}
	for n, f := range p.flight {
		if f > 0 && !p.started[n].IsZero() {
			d = max(d, 2*now.Sub(p.started[n]))
		}
	}
	return min(d, maxStallFactor*base)
}

// maxStallFactor bounds how long an owner may go without a new piece, in
// multiples of the configured OwnerStall.
const maxStallFactor = 10

// owner is the rendezvous-hash winner for piece n among peers.
func (p *plan) owner(n uint32, peers []peer.ID) peer.ID {
	var best peer.ID
	var bestScore uint64
	var buf [4]byte
	binary.BigEndian.PutUint32(buf[:], n)
	for _, id := range peers {
		h := sha256.New()
		h.Write(p.id[:])
		h.Write(buf[:])
		h.Write([]byte(id))
		var sum [32]byte
		score := binary.BigEndian.Uint64(h.Sum(sum[:0]))
		if best == "" || score > bestScore {
			best, bestScore = id, score
		}
	}
	return best
}

// trusted returns the digest to verify piece n against (zero: none known).
func (p *plan) trusted(n uint32) protocol.Digest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.digest[n]
}

// wakeAll wakes every waiter (a timer tick: stalled owners may need taking over).
func (p *plan) wakeAll() {
	p.mu.Lock()
	p.cond.Broadcast()
	p.mu.Unlock()
}

// anyComplete reports whether a live parent holds the whole task.
func (p *plan) anyComplete() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ps := range p.parents {
		if ps.complete {
			return true
		}
	}
	return false
}

// ownsWhole blocks until this node is the rendezvous owner of the whole
// task among the peers fetching it (true), or the task is done or ctx ends
// (false). Used when the origin cannot serve ranges.
func (p *plan) ownsWhole(pol sourcePolicy, ctx context.Context) bool {
	stop := context.AfterFunc(ctx, p.wakeAll)
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.closed || len(p.missing) == 0 || ctx.Err() != nil {
			return false
		}
		if p.owner(^uint32(0), p.sourcingPeersLocked(time.Now(), pol)) == p.self {
			return true
		}
		p.cond.Wait()
	}
}

// held returns a copy of the verified-piece bitmap.
func (p *plan) held() []bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]bool(nil), p.have...)
}
