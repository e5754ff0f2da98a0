package disk

import (
	"sync"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
)

// pendingPiece is a verified piece not yet recorded in bbolt.
type pendingPiece struct {
	l   *live
	gen uint64
	n   uint32
	d   protocol.Digest
}

// flusher makes verified pieces and access times durable in batches: it
// fdatasyncs the data files the pieces were written to and then records
// them in one bbolt transaction. A batch goes out DefaultFlushDelay after
// its first piece, as soon as it holds flushPieces pieces, or when
// flushNow is called.
type flusher struct {
	s *Store

	mu      sync.Mutex
	pending []pendingPiece
	access  map[*task]struct{}
	stopped bool

	// flushMu serialises flushes so that flushNow returns only after every
	// piece queued before the call is durable.
	flushMu sync.Mutex

	kick chan struct{} // capacity 1: a batch started
	full chan struct{} // capacity 1: a batch reached flushPieces
	stop chan struct{}
	done chan struct{}
}

func newFlusher(s *Store) *flusher {
	f := &flusher{
		s:      s,
		access: make(map[*task]struct{}),
		kick:   make(chan struct{}, 1),
		full:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go f.run()
	return f
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// addPiece queues a verified piece.
func (f *flusher) addPiece(l *live, gen uint64, n uint32, d protocol.Digest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	f.pending = append(f.pending, pendingPiece{l: l, gen: gen, n: n, d: d})
	switch len(f.pending) {
	case 1:
		signal(f.kick)
	case f.s.opts.flushPieces:
		signal(f.full)
	}
}

// addAccess queues a task whose access time changed.
func (f *flusher) addAccess(t *task) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		f.access[t] = struct{}{}
	}
}

func (f *flusher) run() {
	defer close(f.done)
	tick := time.NewTicker(accessFlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-f.kick:
			t := time.NewTimer(f.s.opts.flushDelay)
			select {
			case <-t.C:
			case <-f.full:
			case <-f.stop:
				t.Stop()
				return
			}
			t.Stop()
		case <-f.full:
		case <-tick.C:
		case <-f.stop:
			return
		}
		if err := f.flushNow(); err != nil {
			f.s.log.Error("cannot record verified pieces", "err", err)
		}
	}
}

// close stops the loop and flushes what is left.
func (f *flusher) close() error {
	close(f.stop)
	<-f.done
	err := f.flushNow()
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	return err
}

// flushNow makes every piece and access time queued so far durable.
func (f *flusher) flushNow() error {
	f.flushMu.Lock()
	defer f.flushMu.Unlock()
	f.mu.Lock()
	batch, access := f.pending, f.access
	f.pending, f.access = nil, make(map[*task]struct{})
	f.mu.Unlock()
	if len(batch) == 0 && len(access) == 0 {
		return nil
	}

	byLive := make(map[*live][]pendingPiece)
	for _, p := range batch {
		byLive[p.l] = append(byLive[p.l], p)
	}
	// Data first: a piece whose file cannot be synced is never recorded
	// (it stays readable in memory; after a restart it is fetched again).
	for l, ps := range byLive {
		if err := l.datasync(); err != nil {
			f.s.log.Error("fdatasync failed; pieces stay unrecorded", "task", l.t.id.Short(), "pieces", len(ps), "err", err)
			delete(byLive, l)
		}
	}
	err := f.s.db.Update(func(tx *boltTx) error {
		for l, ps := range byLive {
			if err := recordPieces(tx, l, ps); err != nil {
				return err
			}
		}
		for t := range access {
			if err := recordAccess(tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.requeue(byLive, access)
		return noSpace(err)
	}
	return nil
}

// recordPieces stores the pieces of one live state that still belong to
// its current generation and to a task that still exists.
func recordPieces(tx *boltTx, l *live, ps []pendingPiece) error {
	l.t.mu.Lock()
	removed, gen := l.t.removed, l.gen.Load()
	l.t.mu.Unlock()
	b := taskBucket(tx, l.t.id)
	if removed || b == nil {
		return nil
	}
	// A reset after this check runs its own transaction after this one
	// commits, and so clears what this one writes.
	for _, p := range ps {
		if p.gen != gen {
			continue
		}
		if err := putPiece(b, p.n, p.d); err != nil {
			return err
		}
	}
	return nil
}

// recordAccess stores a task's access time.
func recordAccess(tx *boltTx, t *task) error {
	t.mu.Lock()
	removed, at := t.removed, t.info.AccessedAt
	t.accessDirty = false
	t.mu.Unlock()
	b := taskBucket(tx, t.id)
	if removed || b == nil {
		return nil
	}
	return putAccess(b, at)
}

// requeue puts back what a failed transaction did not record. (t.mu is
// taken before f.mu elsewhere, so never while holding f.mu here.)
func (f *flusher) requeue(byLive map[*live][]pendingPiece, access map[*task]struct{}) {
	for t := range access {
		t.mu.Lock()
		t.accessDirty = true
		t.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ps := range byLive {
		f.pending = append(f.pending, ps...)
	}
	for t := range access {
		f.access[t] = struct{}{}
	}
}
