package sim

// The upload side of a simulated node, as node/upload serves pieces: a
// fixed number of upload slots with a bounded wait queue (a freed slot goes
// to the waiting request whose piece this host has sent the fewest times,
// the oldest first; a request that waited queueWait is answered BUSY), the
// queue's stretch (while the uploads under way leave the uplink below
// stretchBelow of its rate, the best waiter gets a slot beyond the number,
// stretchSettle after the last grant, up to upload.StretchLimit; a freed
// slot goes on to a waiter above the number too, so a stretch holds while
// requests wait), and
// super-seeding of the pieces a host fetched from the origin (each is
// announced to one child first, the subscriber with the fewest such pieces
// outstanding; to every child when that child did not ask within
// designeeWait of having no request waiting at the host, or designeeMaxWait
// after the designation, spreadWait after it first left the host, when
// that child leaves, and when the host completes).

import (
	"time"

	"github.com/dragonfly-p2p/df/node/upload"
)

const (
	queueWait    = float64(upload.DefaultQueueWait) / float64(time.Second)
	maxWaiters   = 1024 // upload maxWaiters
	designeeWait = 1.0  // upload designeeWait
	// upload designeeMaxWait
	designeeMaxWait = 5.0
	spreadWait      = 8.0 // upload spreadWait
	// upload stretchBelow and stretchSettle (the limit is upload.StretchLimit)
	stretchBelow  = 0.9
	stretchSettle = 0.15
)

// request is a piece request waiting for an upload slot.
type request struct {
	l        *link
	piece    uint32
	seq      uint64
	deadline float64
}

// seedPiece is a piece a host fetched from the origin, while super-seeded.
type seedPiece struct {
	designee   *host
	designated float64
	l          *link   // the designee's link from the host
	busySeen   float64 // the designee last had a request waiting at the host
	requested  bool
	sent       float64 // < 0: not yet
	open       bool
}

// ask is a child's request for piece n on link l: served now, queued, or
// refused (false).
func (s *sim) ask(l *link, n uint32) bool {
	p, h := l.parent, l.child
	s.requested(p, h, n)
	if p.uploads < p.slots && len(p.queue) == 0 {
		s.grant(l, n)
		return true
	}
	if len(p.queue) >= maxWaiters {
		return false
	}
	s.seq++
	p.queue = append(p.queue, &request{l: l, piece: n, seq: s.seq, deadline: s.now + queueWait})
	l.busy++
	h.inflight[n]++
	if h.inflight[n] == 1 {
		h.started[n] = s.now
	}
	return true
}

// grant starts sending piece n on link l.
func (s *sim) grant(l *link, n uint32) {
	p := l.parent
	if p.sentCount == nil {
		p.sentCount = make([]uint32, len(p.have))
	}
	p.sentCount[n]++
	p.lastGrant = s.now
	if sp := p.seeded[n]; sp != nil && sp.sent < 0 {
		sp.sent = s.now
	}
	s.startFlow(l, l.child, p.idx, n)
}

// release hands a freed slot of p to the best waiter, above the number
// too (the stretch holds while requests wait), and fills any slot below it.
func (s *sim) release(p *host) {
	if len(p.queue) > 0 {
		s.grantBest(p)
	}
	for p.uploads < p.slots && len(p.queue) > 0 {
		s.grantBest(p)
	}
}

// stretch grants p's best waiter a slot beyond p.slots when p's uplink
// carried less than stretchBelow of its rate in the last step.
func (s *sim) stretch() {
	for i, p := range s.hosts {
		if len(p.queue) == 0 || p.uploads >= upload.StretchLimit(p.slots) || s.now-p.lastGrant < stretchSettle ||
			p.up-s.remUp[i] >= stretchBelow*p.up {
			continue
		}
		s.grantBest(p)
		s.stretched++
	}
}

// grantBest hands a slot of p to the waiter whose piece p sent the fewest
// times, the oldest first.
func (s *sim) grantBest(p *host) {
	best := 0
	for i, r := range p.queue[1:] {
		b := p.queue[best]
		if p.sentCount[r.piece] < p.sentCount[b.piece] || p.sentCount[r.piece] == p.sentCount[b.piece] && r.seq < b.seq {
			best = i + 1
		}
	}
	r := p.queue[best]
	p.queue = append(p.queue[:best], p.queue[best+1:]...)
	// The waiting request held its stream and its piece: hand them to the
	// flow.
	r.l.busy--
	r.l.child.inflight[r.piece]--
	s.grant(r.l, r.piece)
}

// expire answers BUSY to requests that waited queueWait.
func (s *sim) expire() {
	for _, p := range s.hosts {
		kept := p.queue[:0]
		for _, r := range p.queue {
			if s.now < r.deadline {
				kept = append(kept, r)
				continue
			}
			h := r.l.child
			r.l.busy--
			h.inflight[r.piece]--
			s.busyAnswer(r.l)
			for _, l := range h.parents { // plan.finish wakes every worker
				l.blocked = false
			}
		}
		clear(p.queue[len(kept):])
		p.queue = kept
	}
}

// busyAnswer is a BUSY reply: the stream sleeps 100–500 ms (a busy parent
// is neither reported to nor blocklisted by the scheduler).
func (s *sim) busyAnswer(l *link) {
	l.retryAt = s.now + 0.1 + 0.4*s.rnd.Float64()
	s.busy++
}

// visible reports whether child has been told that p holds piece n.
func (s *sim) visible(p, child *host, n uint32) bool {
	sp := p.seeded[n]
	return sp == nil || sp.open || sp.designee == child
}

// fromOrigin starts super-seeding piece n of p.
func (s *sim) fromOrigin(p *host, n uint32) {
	if p.seeded == nil {
		p.seeded = map[uint32]*seedPiece{}
		p.outstanding = map[*host]int{}
		p.assigned = map[*host]int{}
		s.uploaders = append(s.uploaders, p)
	}
	sp := &seedPiece{sent: -1}
	if p.done {
		s.announce(p, n, nil)
		return
	}
	p.seeded[n] = sp
	var best *host
	for _, l := range p.children {
		c := l.child
		if c.done || c.failed {
			continue
		}
		if best == nil || p.outstanding[c] < p.outstanding[best] ||
			p.outstanding[c] == p.outstanding[best] && p.assigned[c] < p.assigned[best] {
			best = c
		}
	}
	if best == nil {
		delete(p.seeded, n)
		s.announce(p, n, nil)
		return
	}
	sp.designee, sp.designated = best, s.now
	p.outstanding[best]++
	p.assigned[best]++
	for _, l := range p.children {
		if l.child == best {
			sp.l = l
			best.rarity[n]++
			l.blocked = false
		}
	}
}

// requested records that child asked p for piece n.
func (s *sim) requested(p, child *host, n uint32) {
	if sp := p.seeded[n]; sp != nil && sp.designee == child && !sp.requested {
		sp.requested = true
		if p.outstanding[child] > 0 {
			p.outstanding[child]--
		}
	}
}

// reveal announces super-seeded pieces whose time has come.
func (s *sim) reveal() {
	for _, p := range s.uploaders {
		waiting := make(map[*link]bool, len(p.queue))
		for _, r := range p.queue {
			waiting[r.l] = true
		}
		for n, sp := range p.seeded {
			gone := sp.designee == nil || sp.designee.done || sp.designee.failed
			if waiting[sp.l] {
				sp.busySeen = s.now
			}
			late := s.now-max(sp.designated, sp.busySeen) > designeeWait || s.now-sp.designated > designeeMaxWait
			if p.done || gone && !sp.requested || !sp.requested && late ||
				sp.sent >= 0 && s.now-sp.sent > spreadWait {
				if !sp.requested && p.outstanding[sp.designee] > 0 {
					p.outstanding[sp.designee]--
				}
				delete(p.seeded, n)
				s.announce(p, n, sp.designee)
			}
		}
	}
}

// announce tells p's children, except skip, that p holds piece n.
func (s *sim) announce(p *host, n uint32, skip *host) {
	for _, l := range p.children {
		if c := l.child; !c.done && c != skip {
			c.rarity[n]++
			l.blocked = false
		}
	}
}
