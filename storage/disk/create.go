package disk

import (
	"context"
	"fmt"
	"os"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Create registers a task, or joins the existing one; see storage.Store.
func (s *Store) Create(ctx context.Context, spec storage.Spec) (storage.Task, error) {
	if err := validateSpec(&spec); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	h, evicted, err := s.create(ctx, spec)
	s.leave()
	s.notifyEvicted(evicted)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Open returns a handle on an existing task; see storage.Store.
func (s *Store) Open(ctx context.Context, id protocol.TaskID) (storage.Task, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	unlock, err := s.lockID(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t := s.lookup(id)
	if t == nil {
		return nil, fmt.Errorf("disk: task %s: %w", id.Short(), storage.ErrNotFound)
	}
	h, err := s.openLocked(t)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// validateSpec checks a Spec and fills in what it implies.
func validateSpec(spec *storage.Spec) error {
	if spec.ID == (protocol.TaskID{}) {
		return fmt.Errorf("disk: create: %w: zero task ID", ErrInvalidSpec)
	}
	switch spec.Kind {
	case storage.KindContent:
		if spec.ContentDigest.IsZero() {
			spec.ContentDigest = protocol.Digest(spec.ID)
		} else if spec.ContentDigest != protocol.Digest(spec.ID) {
			return fmt.Errorf("disk: create %s: %w: content task digest %s is not its ID", spec.ID.Short(), ErrInvalidSpec, spec.ContentDigest)
		}
	case storage.KindURL, storage.KindNamed:
	default:
		return fmt.Errorf("disk: create %s: %w: unknown kind %d", spec.ID.Short(), ErrInvalidSpec, spec.Kind)
	}
	layout, err := protocol.NewLayout(spec.Layout.ContentLength, spec.Layout.PieceLength)
	if err != nil {
		return fmt.Errorf("disk: create %s: %w", spec.ID.Short(), err)
	}
	spec.Layout = layout
	return nil
}

// compatible says whether spec may join the existing task info.
func compatible(info storage.TaskInfo, spec storage.Spec) error {
	switch {
	case info.Kind != spec.Kind:
		return fmt.Errorf("disk: create %s: %w: stored as a %s task, not %s", spec.ID.Short(), storage.ErrExists, info.Kind, spec.Kind)
	case info.Layout != spec.Layout:
		return fmt.Errorf("disk: create %s: %w: stored layout %d/%d, requested %d/%d", spec.ID.Short(), storage.ErrExists,
			info.Layout.ContentLength, info.Layout.PieceLength, spec.Layout.ContentLength, spec.Layout.PieceLength)
	case !info.ContentDigest.IsZero() && !spec.ContentDigest.IsZero() && info.ContentDigest != spec.ContentDigest:
		return fmt.Errorf("disk: create %s: %w: stored content digest %s, requested %s", spec.ID.Short(), storage.ErrExists,
			info.ContentDigest, spec.ContentDigest)
	}
	return nil
}

func (s *Store) create(ctx context.Context, spec storage.Spec) (*handle, []protocol.TaskID, error) {
	unlock, err := s.lockID(ctx, spec.ID)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	if t := s.lookup(spec.ID); t != nil {
		if err := compatible(t.snapshot(), spec); err != nil {
			return nil, nil, err
		}
		h, err := s.openLocked(t)
		return h, nil, err
	}
	size := spec.Layout.ContentLength
	evicted, err := s.reserve(ctx, size)
	if err != nil {
		return nil, evicted, err
	}
	now := s.opts.now()
	info := storage.TaskInfo{
		ID:            spec.ID,
		Kind:          spec.Kind,
		Layout:        spec.Layout,
		ContentDigest: spec.ContentDigest,
		Origin:        spec.Origin,
		CreatedAt:     now,
		AccessedAt:    now,
	}
	f, err := s.createFiles(info)
	if err != nil {
		s.unreserve(size)
		return nil, evicted, err
	}
	t := newTask(info)
	s.mu.Lock()
	s.tasks[t.id] = t
	s.reserved -= size
	s.used += size
	s.mu.Unlock()
	s.log.Debug("task created", "task", t.id.Short(), "kind", info.Kind, "bytes", size, "pieces", info.Layout.PieceCount())
	return s.attach(t, newLive(s, t, f, info.Layout, nil)), evicted, nil
}

// createFiles writes a new task's sidecar, pre-allocated data file and
// record, in that order, and returns the data file open for writing.
func (s *Store) createFiles(info storage.TaskInfo) (f *os.File, err error) {
	id := info.ID
	defer func() {
		if err != nil {
			if f != nil {
				_ = f.Close()
				f = nil
			}
			_ = s.root.Remove(dataPath(id))
			_ = s.root.Remove(metaPath(id))
			err = fmt.Errorf("disk: create %s: %w", id.Short(), noSpace(err))
		}
	}()
	rec, err := encodeRecord(info)
	if err != nil {
		return nil, err
	}
	if err = mkdirShard(s.root, id); err != nil {
		return nil, err
	}
	if err = writeFileAtomic(s.root, metaPath(id), rec); err != nil {
		return nil, err
	}
	if f, err = s.root.OpenFile(dataPath(id), os.O_RDWR|os.O_CREATE|os.O_TRUNC, filePerm); err != nil {
		return nil, err
	}
	if err = preallocate(f, info.Layout.ContentLength); err != nil {
		return f, err
	}
	if err = datasync(f); err != nil {
		return f, err
	}
	if err = syncDir(s.root, shardDir(id)); err != nil {
		return f, err
	}
	err = s.db.Update(func(tx *boltTx) error {
		b, err := putTask(tx, id, rec)
		if err != nil {
			return err
		}
		return putAccess(b, info.AccessedAt)
	})
	return f, err
}

// openLocked returns a new handle on t, loading its live state if no
// handle is open. The caller holds t's ID lock.
func (s *Store) openLocked(t *task) (*handle, error) {
	t.mu.Lock()
	l := t.live
	t.mu.Unlock()
	if l == nil {
		var err error
		if l, err = s.loadLive(t); err != nil {
			return nil, err
		}
	}
	s.touch(t)
	return s.attach(t, l), nil
}

// loadLive reads t's verified pieces from bbolt (no file I/O inside the
// transaction) and opens its data file.
func (s *Store) loadLive(t *task) (*live, error) {
	info := t.snapshot()
	var pieces []protocol.PieceInfo
	var bad int
	err := s.db.View(func(tx *boltTx) error {
		b := taskBucket(tx, t.id)
		if b == nil {
			return fmt.Errorf("disk: task %s: record vanished: %w", t.id.Short(), storage.ErrNotFound)
		}
		bad = forEachPiece(b, info.Layout.PieceCount(), func(n uint32, d protocol.Digest) {
			pieces = append(pieces, protocol.PieceInfo{Number: n, Digest: d})
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if bad > 0 {
		s.log.Warn("ignored malformed piece entries", "task", t.id.Short(), "entries", bad)
	}
	flag := os.O_RDWR
	if info.Complete {
		flag = os.O_RDONLY
	}
	f, err := s.root.OpenFile(dataPath(t.id), flag, 0)
	if err != nil {
		return nil, fmt.Errorf("disk: task %s: open data: %w", t.id.Short(), err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != info.Layout.ContentLength {
		_ = f.Close()
		return nil, fmt.Errorf("disk: task %s: data file is not %d bytes (%v): %w",
			t.id.Short(), info.Layout.ContentLength, err, storage.ErrNotFound)
	}
	l := newLive(s, t, f, info.Layout, pieces)
	t.mu.Lock()
	t.info.VerifiedPieces = uint32(len(l.order))
	t.mu.Unlock()
	return l, nil
}

// attach counts a new handle on t, installing l as its live state if it
// has none. The caller holds t's ID lock.
func (s *Store) attach(t *task, l *live) *handle {
	t.mu.Lock()
	fresh := t.live == nil
	if fresh {
		t.live = l
		if !t.info.Complete {
			l.hasher = newContentHasher(l)
			l.hasher.startLocked()
		}
	}
	l = t.live
	t.handles++
	t.mu.Unlock()
	if fresh {
		s.mu.Lock()
		s.lives[l] = struct{}{}
		s.mu.Unlock()
	}
	return &handle{s: s, t: t, l: l}
}

// detach drops a handle; the last one releases the live state. The caller
// holds t's ID lock.
func (s *Store) detach(t *task, l *live) error {
	t.mu.Lock()
	t.handles--
	last := t.handles == 0
	if last {
		t.live = nil
		l.killLocked(errHandleClosed)
	}
	t.mu.Unlock()
	if !last {
		return nil
	}
	return s.release(l)
}

// release tears down a live state nobody uses any more: stop its hasher,
// make its pieces durable, close its file, remove it if it was deleted.
func (s *Store) release(l *live) error {
	if l.hasher != nil {
		l.hasher.halt()
	}
	err := s.flush.flushNow()
	if cerr := l.closeFile(); err == nil {
		err = cerr
	}
	l.t.mu.Lock()
	trash := l.trash
	l.trash = nil
	l.t.mu.Unlock()
	for _, name := range trash {
		if rerr := s.root.Remove(name); rerr != nil {
			s.log.Warn("cannot remove deleted task file", "file", name, "err", rerr)
		}
	}
	s.mu.Lock()
	delete(s.lives, l)
	s.mu.Unlock()
	return err
}
