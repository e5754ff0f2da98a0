package disk

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"

	"github.com/dragonfly-p2p/df/protocol"
)

// contentHasher folds a task's verified pieces into the whole-content
// sha256, in piece order, as they become contiguous: piece k is hashed once
// pieces 0..k are verified. It reads them back from the data file (usually
// from the page cache), so Complete need not re-read content that arrived
// roughly in order. Fields marked "t.mu" are guarded by the task's mutex.
type contentHasher struct {
	l       *live
	wake    chan struct{} // capacity 1: there may be work
	stop    chan struct{}
	done    chan struct{}
	started bool // t.mu

	next     uint32          // t.mu: pieces folded in so far
	gen      uint64          // t.mu: generation the running hash belongs to
	sum      protocol.Digest // t.mu: valid when ready
	ready    bool            // t.mu: every piece folded in for generation gen
	err      error           // t.mu: read failure for generation gen
	progress chan struct{}   // t.mu: closed when ready or err becomes set
}

func newContentHasher(l *live) *contentHasher {
	return &contentHasher{
		l:        l,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		gen:      l.gen.Load(),
		progress: make(chan struct{}),
	}
}

// kick tells the hasher there may be new contiguous pieces.
func (c *contentHasher) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// wakeLocked releases Complete callers waiting for progress. t.mu held.
func (c *contentHasher) wakeLocked() {
	close(c.progress)
	c.progress = make(chan struct{})
	c.kick()
}

// start launches the goroutine. t.mu held.
func (c *contentHasher) startLocked() {
	if c.started {
		return
	}
	c.started = true
	go c.run()
}

// halt stops the goroutine and waits for it.
func (c *contentHasher) halt() {
	c.l.t.mu.Lock()
	started := c.started
	c.started = false
	c.l.t.mu.Unlock()
	if !started {
		return
	}
	close(c.stop)
	<-c.done
}

func (c *contentHasher) run() {
	defer close(c.done)
	l := c.l
	h := sha256.New()
	bufp := getBuf()
	defer putBuf(bufp)
	for {
		n, gen, work := c.nextWork(h)
		if !work {
			select {
			case <-c.wake:
				continue
			case <-c.stop:
				return
			}
		}
		err := c.hashPiece(h, n, *bufp)
		l.t.mu.Lock()
		if l.gen.Load() == gen && c.gen == gen {
			if err != nil {
				c.err = err
				c.wakeLocked()
			} else {
				c.next++
			}
		}
		l.t.mu.Unlock()
		if err != nil {
			l.s.log.Error("content hasher cannot read piece", "task", l.t.id.Short(), "piece", n, "err", err)
		}
		select {
		case <-c.stop:
			return
		default:
		}
	}
}

// nextWork returns the piece to fold in next, resetting h on a new
// generation and publishing the sum when every piece is in.
func (c *contentHasher) nextWork(h hash.Hash) (n uint32, gen uint64, work bool) {
	l := c.l
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	if g := l.gen.Load(); g != c.gen {
		c.gen, c.next, c.ready, c.err = g, 0, false, nil
		h.Reset()
	}
	if l.dead != nil || c.err != nil {
		return 0, 0, false
	}
	count := l.layout.PieceCount()
	if c.next == count {
		if !c.ready {
			h.Sum(c.sum[:0])
			c.ready = true
			c.wakeLocked()
		}
		return 0, 0, false
	}
	if l.state[c.next] != pieceVerified {
		return 0, 0, false
	}
	return c.next, c.gen, true
}

// hashPiece reads piece n back and feeds it to h.
func (c *contentHasher) hashPiece(h hash.Hash, n uint32, buf []byte) error {
	off, length, err := c.l.layout.Piece(n)
	if err != nil {
		return err
	}
	for done := int64(0); done < int64(length); {
		k := min(int64(len(buf)), int64(length)-done)
		m, err := c.l.readAt(buf[:k], off+done)
		h.Write(buf[:m])
		done += int64(m)
		if err != nil && done < int64(length) {
			return err
		}
	}
	return nil
}

// waitSum waits until the whole content is hashed and returns its digest.
func (l *live) waitSum(ctx context.Context) (protocol.Digest, error) {
	c := l.hasher
	if c == nil { // only complete tasks have none, and they never get here
		return protocol.Digest{}, fmt.Errorf("disk: task %s: no content hasher", l.t.id.Short())
	}
	for {
		l.t.mu.Lock()
		if l.dead != nil {
			err := l.dead
			l.t.mu.Unlock()
			return protocol.Digest{}, err
		}
		if c.gen == l.gen.Load() {
			if c.ready {
				sum := c.sum
				l.t.mu.Unlock()
				return sum, nil
			}
			if c.err != nil {
				err := c.err
				l.t.mu.Unlock()
				return protocol.Digest{}, fmt.Errorf("disk: task %s: hash content: %w", l.t.id.Short(), err)
			}
		}
		ch := c.progress
		c.kick()
		l.t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return protocol.Digest{}, ctx.Err()
		case <-l.s.closing:
			return protocol.Digest{}, errStoreClosed
		}
	}
}
