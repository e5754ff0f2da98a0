package upload

import (
	"context"
	"sync"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
)

// maxSendCounts bounds the per-piece send counters kept by a slot queue;
// past it they start over (the order they give is a preference, not a rule).
const maxSendCounts = 1 << 16

// maxWaiters bounds the requests waiting for a slot; more are answered BUSY.
const maxWaiters = 1024

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
type slotQueue struct {
	mu      sync.Mutex
	size    int
	used    int
	seq     uint64
	waiters []*slotWaiter
	sent    map[pieceKey]uint32
}

type slotWaiter struct {
	key     pieceKey
	seq     uint64
	granted chan struct{}
}

func newSlotQueue(size int) *slotQueue {
	return &slotQueue{size: max(1, size), sent: make(map[pieceKey]uint32)}
}

// acquire waits up to wait for a slot to send piece key. It returns false
// when none freed in time (or ctx ended, or too many wait): answer BUSY.
// After true, release must be called once the piece is sent.
func (q *slotQueue) acquire(ctx context.Context, key pieceKey, wait time.Duration) bool {
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

	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.granted:
		return true
	case <-t.C:
	case <-ctx.Done():
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

// release frees a slot and hands it to the best waiter.
func (q *slotQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.used--
	if len(q.waiters) == 0 || q.used >= q.size {
		return
	}
	best := 0
	for i, w := range q.waiters[1:] {
		bw := q.waiters[best]
		cw, cb := q.sent[w.key], q.sent[bw.key]
		if cw < cb || (cw == cb && w.seq < bw.seq) {
			best = i + 1
		}
	}
	w := q.waiters[best]
	q.waiters = append(q.waiters[:best], q.waiters[best+1:]...)
	q.grantLocked(w.key)
	close(w.granted)
}

func (q *slotQueue) grantLocked(key pieceKey) {
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
