package disk

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

type pieceState uint8

const (
	pieceMissing pieceState = iota
	pieceWriting
	pieceVerified
)

// closedChan is returned by Changed once nothing more will change.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// live is the state of a task while handles are open: its data file and
// which pieces are verified. Fields marked "t.mu" are guarded by the
// owning task's mutex.
type live struct {
	s      *Store
	t      *task
	layout protocol.Layout
	f      *os.File

	// fio is held shared around every use of f and exclusively to close it,
	// so no write can land after the state was torn down.
	fio     sync.RWMutex
	fclosed bool // fio

	state   []pieceState             // t.mu
	digests []protocol.Digest        // t.mu
	order   []uint32                 // t.mu: verified pieces in verification order
	waiters map[uint32]chan struct{} // t.mu: closed when a piece being written settles
	changed chan struct{}            // t.mu
	dead    error                    // t.mu: non-nil once deleted or the store closed
	syncErr error                    // t.mu: sticky fdatasync failure
	gen     atomic.Uint64            // bumped (under t.mu) when every piece is discarded
	isDead  atomic.Bool              // mirrors dead != nil for lock-free readers
	trash   []string                 // t.mu: renamed files of a deleted task, removed at release
	hasher  *contentHasher           // nil for a task already complete
}

// newLive builds the state of t over f. verified lists the stored pieces.
func newLive(s *Store, t *task, f *os.File, layout protocol.Layout, verified []protocol.PieceInfo) *live {
	count := layout.PieceCount()
	l := &live{
		s:       s,
		t:       t,
		layout:  layout,
		f:       f,
		state:   make([]pieceState, count),
		digests: make([]protocol.Digest, count),
		order:   make([]uint32, 0, len(verified)),
		waiters: make(map[uint32]chan struct{}),
		changed: make(chan struct{}),
	}
	for _, p := range verified {
		if p.Number < count && l.state[p.Number] != pieceVerified {
			l.state[p.Number] = pieceVerified
			l.digests[p.Number] = p.Digest
			l.order = append(l.order, p.Number)
		}
	}
	return l
}

// notifyLocked fires Changed. t.mu held.
func (l *live) notifyLocked() {
	if l.changed == closedChan {
		return
	}
	close(l.changed)
	if l.dead != nil {
		l.changed = closedChan
	} else {
		l.changed = make(chan struct{})
	}
}

// killLocked makes every handle fail with err from now on. t.mu held.
func (l *live) killLocked(err error) {
	if l.dead != nil {
		return
	}
	l.dead = err
	l.isDead.Store(true)
	for n, ch := range l.waiters {
		close(ch)
		delete(l.waiters, n)
	}
	if l.hasher != nil {
		l.hasher.wakeLocked()
	}
	l.notifyLocked()
}

// discardLocked forgets every verified piece (the whole-content check
// failed). t.mu held; no piece may be being written.
func (l *live) discardLocked() {
	l.gen.Add(1)
	for i := range l.state {
		l.state[i] = pieceMissing
		l.digests[i] = protocol.Digest{}
	}
	l.order = l.order[:0]
	l.t.info.VerifiedPieces = 0
	if l.hasher != nil {
		l.hasher.kick()
	}
	l.notifyLocked()
}

// writeAt writes p at off unless the file was closed.
func (l *live) writeAt(p []byte, off int64) error {
	l.fio.RLock()
	defer l.fio.RUnlock()
	if l.fclosed {
		return fmt.Errorf("disk: task %s: %w", l.t.id.Short(), storage.ErrClosed)
	}
	_, err := l.f.WriteAt(p, off)
	return noSpace(err)
}

// readAt reads from the data file unless it was closed.
func (l *live) readAt(p []byte, off int64) (int, error) {
	l.fio.RLock()
	defer l.fio.RUnlock()
	if l.fclosed {
		return 0, fmt.Errorf("disk: task %s: %w", l.t.id.Short(), storage.ErrClosed)
	}
	return l.f.ReadAt(p, off)
}

// writeback starts asynchronous writeback of a freshly written range.
func (l *live) writeback(off, n int64) {
	l.fio.RLock()
	defer l.fio.RUnlock()
	if !l.fclosed {
		startWriteback(l.f, off, n)
	}
}

// datasync flushes the data file. A failure is sticky: what the kernel
// dropped cannot be trusted again.
func (l *live) datasync() error {
	l.fio.RLock()
	var err error
	if l.fclosed {
		err = fmt.Errorf("disk: task %s: %w", l.t.id.Short(), storage.ErrClosed)
	} else {
		err = datasync(l.f)
	}
	l.fio.RUnlock()
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	if err != nil && l.syncErr == nil {
		l.syncErr = err
	}
	return l.syncErr
}

// closeFile waits for in-flight I/O and closes the data file.
func (l *live) closeFile() error {
	l.fio.Lock()
	defer l.fio.Unlock()
	if l.fclosed {
		return nil
	}
	l.fclosed = true
	return l.f.Close()
}
