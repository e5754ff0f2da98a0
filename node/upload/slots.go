package upload

import (
	"context"
	"io"
	"math"
	"sync"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
)

// maxSendCounts bounds the per-piece send counters kept by a slot queue;
// past it they start over (the order they give is a preference, not a rule).
const maxSendCounts = 1 << 16

// maxWaiters bounds the requests waiting for a slot; more are answered BUSY.
const maxWaiters = 1024

// Stretching (see slotQueue): a waiter may take a slot beyond size while
// the uplink sends below stretchBelow of its capacity, no sooner than
// stretchSettle after the last grant (a new upload needs that long to come
// up to speed), checked every stretchPoll, up to stretchMax times size and
// never beyond maxStretched uploads (each holds a copy buffer).
//
// stretchMax was 4 until 2026-12-07: at 25 Mbit/s (2 slots) the uploads
// then stopped at 8 while children fetch from 10–15 parents each, and the
// 256 MiB swarm's p50 was 95.2 s (median of 18 runs); with 6 (12 uploads)
// 94.2 s (of 17; docs/benchmarks.md, "Super-seeding held; twelve uploads").
const (
	stretchMax    = 6
	maxStretched  = 256
	stretchBelow  = 0.9
	stretchSettle = 150 * time.Millisecond
	stretchPoll   = 50 * time.Millisecond
	meterWindow   = 500 * time.Millisecond
)

// pieceKey names one piece of one task.
type pieceKey struct {
	task protocol.TaskID
	n    uint32
}

// slotQueue hands out a fixed number of upload slots. A request that finds
// every slot taken waits (up to a bound) instead of being turned away at
// once, and a freed slot goes to the waiting request whose piece this node
// has sent the fewest times, the oldest first among equals. This is what
// keeps a host that holds pieces nobody else has yet (the one fetching from
// the origin) sending each of them about once: its children ask it for the
// pieces rarest among their own parents, several may ask for the same one,
// and the duplicates wait while a piece that has not left the host yet goes
// out; by the time a duplicate's turn comes its child can usually get the
// piece from a sibling. The uplink never idles while anything is asked for.
//
// When the uplink's capacity is known the queue also stretches: the size
// is what the uplink carries at a useful rate per upload, but an upload
// goes only as fast as its child receives, and a child fetching from
// several parents at once takes each piece at a fraction of its downlink.
// While the uploads under way send below stretchBelow of the capacity, the
// best waiter gets a slot beyond size (up to stretchMax times size). A
// freed slot goes on to the best waiter, so a stretch holds while requests
// wait (uploads end one at a time, and an uplink that needed k uploads to
// fill needs them again for the next pieces); it goes away as the uploads
// end when nobody waits. Without a known capacity the size is a hard limit.
type slotQueue struct {
	mu        sync.Mutex
	size      int
	used      int
	seq       uint64
	waiters   []*slotWaiter
	sent      map[pieceKey]uint32
	capacity  float64 // bytes per second; 0: unknown, never stretch
	meter     meter
	lastGrant time.Time
	stretched uint64 // grants beyond size, ever
}

type slotWaiter struct {
	key     pieceKey
	seq     uint64
	granted chan struct{}
}

// newSlotQueue returns a queue of size slots; capacity is the uplink's
// bytes per second (0: unknown, never stretch).
func newSlotQueue(size int, capacity int64) *slotQueue {
	return &slotQueue{size: max(1, size), sent: make(map[pieceKey]uint32), capacity: float64(max(capacity, 0))}
}

// acquire waits up to wait for a slot to send piece key. It returns false
// when none freed in time (or ctx ended, or too many wait): answer BUSY.
// After true, release must be called once the piece is sent.
func (q *slotQueue) acquire(ctx context.Context, key pieceKey, wait time.Duration) bool {
	return q.acquireNoting(ctx, key, wait, nil)
}

// acquireNoting is acquire that calls queued when the request has to wait
// for a slot, and the function queued returns when the wait ends (nil:
// nothing to note).
func (q *slotQueue) acquireNoting(ctx context.Context, key pieceKey, wait time.Duration, queued func() (done func())) bool {
	q.mu.Lock()
	if q.used < q.size && len(q.waiters) == 0 {
		q.grantLocked(key)
		q.mu.Unlock()
		return true
	}
	if wait <= 0 || len(q.waiters) >= maxWaiters {
		q.mu.Unlock()
		return false
	}
	q.seq++
	w := &slotWaiter{key: key, seq: q.seq, granted: make(chan struct{})}
	q.waiters = append(q.waiters, w)
	q.mu.Unlock()
	if queued != nil {
		defer queued()()
	}

	t := time.NewTimer(wait)
	defer t.Stop()
	var poll <-chan time.Time
	if q.capacity > 0 {
		tick := time.NewTicker(stretchPoll)
		defer tick.Stop()
		poll = tick.C
	}
wait:
	for {
		select {
		case <-w.granted:
			return true
		case <-poll:
			if q.stretch(w) {
				return true
			}
		case <-t.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-w.granted: // granted while timing out: keep it
		return true
	default:
	}
	for i, o := range q.waiters {
		if o == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			break
		}
	}
	return false
}

// release frees a slot and hands it to the best waiter (see slotQueue).
func (q *slotQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.used--
	if len(q.waiters) == 0 || (q.used >= q.size && q.capacity == 0) {
		return
	}
	best := q.bestLocked()
	w := q.waiters[best]
	q.waiters = append(q.waiters[:best], q.waiters[best+1:]...)
	q.grantLocked(w.key)
	close(w.granted)
}

// bestLocked is the index of the waiter to grant next: its piece sent the
// fewest times, then the oldest. There must be a waiter.
func (q *slotQueue) bestLocked() int {
	best := 0
	for i, w := range q.waiters[1:] {
		bw := q.waiters[best]
		cw, cb := q.sent[w.key], q.sent[bw.key]
		if cw < cb || (cw == cb && w.seq < bw.seq) {
			best = i + 1
		}
	}
	return best
}

// stretch grants w a slot beyond size when it is the best waiter and the
// uploads under way leave the uplink underused (see slotQueue).
func (q *slotQueue) stretch(w *slotWaiter) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	if len(q.waiters) == 0 || q.used >= q.stretchLimit() || now.Sub(q.lastGrant) < stretchSettle ||
		q.meter.rate(now) >= stretchBelow*q.capacity {
		return false
	}
	best := q.bestLocked()
	if q.waiters[best] != w {
		return false
	}
	q.waiters = append(q.waiters[:best], q.waiters[best+1:]...)
	q.grantLocked(w.key)
	q.stretched++
	return true
}

// stretchLimit is the most uploads q's stretch may reach.
func (q *slotQueue) stretchLimit() int { return StretchLimit(q.size) }

// StretchLimit is the most uploads a node with the given number of upload
// slots sends at once while its slots stretch: stretchMax times the number,
// at most maxStretched (never fewer than the number itself).
func StretchLimit(slots int) int { return min(stretchMax*slots, max(slots, maxStretched)) }

// stretchedTotal is the number of slots granted beyond size so far.
func (q *slotQueue) stretchedTotal() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stretched
}

// writer counts what w sends in the queue's uplink meter.
func (q *slotQueue) writer(w io.Writer) io.Writer { return meteredWriter{w, q} }

type meteredWriter struct {
	io.Writer
	q *slotQueue
}

func (m meteredWriter) Write(b []byte) (int, error) {
	n, err := m.Writer.Write(b)
	m.q.mu.Lock()
	m.q.meter.add(n, time.Now())
	m.q.mu.Unlock()
	return n, err
}

// meter is an exponentially weighted moving average of a byte rate with
// time constant meterWindow, measured since the last restart: an average
// that started from zero would read a new upload at full speed as well
// under half the capacity for the first meterWindow and stretch the queue
// while the uplink is full, so rate divides by the weight the measurement
// has covered so far (the bias correction of a cold EWMA).
type meter struct {
	v     float64 // bytes, decayed
	at    time.Time
	since time.Time // last restart (zero: long ago, no correction)
}

// restart measures from now on (the uplink was idle until now).
func (m *meter) restart(now time.Time) {
	m.v, m.at, m.since = 0, now, now
}

func (m *meter) decay(now time.Time) {
	if !m.at.IsZero() {
		m.v *= math.Exp(-float64(now.Sub(m.at)) / float64(meterWindow))
	}
	m.at = now
}

func (m *meter) add(n int, now time.Time) {
	m.decay(now)
	m.v += float64(n)
}

// rate is bytes per second.
func (m *meter) rate(now time.Time) float64 {
	m.decay(now)
	// The weight of [since, now] in the average: 1 long after a restart.
	covered := -math.Expm1(-float64(now.Sub(m.since)) / float64(meterWindow))
	if covered <= 0 {
		return 0
	}
	return m.v / meterWindow.Seconds() / covered
}

func (q *slotQueue) grantLocked(key pieceKey) {
	q.lastGrant = time.Now()
	if q.used == 0 { // the uplink was idle: measure this busy spell alone
		q.meter.restart(q.lastGrant)
	}
	q.used++
	if len(q.sent) >= maxSendCounts {
		clear(q.sent)
	}
	q.sent[key]++
}

// inFlight is the number of slots in use.
func (q *slotQueue) inFlight() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.used
}

// waiting is the number of requests waiting for a slot.
func (q *slotQueue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiters)
}
