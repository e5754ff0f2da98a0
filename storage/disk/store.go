package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Store is a storage.Store in one local directory. Create it with Open.
type Store struct {
	opts  options
	log   *slog.Logger
	dir   string
	root  *os.Root
	db    *bolt.DB
	flush *flusher

	// ops is held shared by every operation that uses db or root, and
	// exclusively by Close, which so waits for them to finish.
	ops       sync.RWMutex
	closed    bool // ops
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	tasks    map[protocol.TaskID]*task
	busy     map[protocol.TaskID]chan struct{} // ID locks
	lives    map[*live]struct{}
	used     int64 // content lengths of the tasks in tasks
	reserved int64 // content lengths of tasks being created or imported

	gcMu sync.Mutex
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir. See the package
// documentation for the layout, and storage.ErrUnsafeDir and
// storage.ErrLocked for the checks it makes first.
func Open(ctx context.Context, dir string, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("disk: open %s: %w", dir, err)
	}
	s := &Store{
		opts:    o,
		log:     o.log,
		dir:     dir,
		root:    root,
		closing: make(chan struct{}),
		tasks:   make(map[protocol.TaskID]*task),
		busy:    make(map[protocol.TaskID]chan struct{}),
		lives:   make(map[*live]struct{}),
	}
	if err := s.start(ctx); err != nil {
		if s.db != nil {
			_ = s.db.Close()
		}
		_ = root.Close()
		return nil, err
	}
	s.flush = newFlusher(s)
	s.log.Info("store open", "dir", dir, "tasks", len(s.tasks), "bytes", s.used, "quota", o.quota)
	return s, nil
}

// start prepares the subdirectories, opens (or recovers) meta.db and
// reconciles it with the files.
func (s *Store) start(ctx context.Context) error {
	for _, d := range []string{tasksDir, tmpDir} {
		if err := s.root.Mkdir(d, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("disk: create %s: %w", d, err)
		}
	}
	if err := s.openMeta(ctx); err != nil {
		return err
	}
	s.cleanTmp()
	return s.reconcile(ctx)
}

// Close flushes metadata and releases the store; open handles fail with
// storage.ErrClosed from then on.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.ops.Lock()
		s.closed = true
		s.ops.Unlock()
		s.closeErr = s.shutdown()
	})
	return s.closeErr
}

func (s *Store) shutdown() error {
	s.mu.Lock()
	lives := make([]*live, 0, len(s.lives))
	for l := range s.lives {
		lives = append(lives, l)
	}
	s.mu.Unlock()
	for _, l := range lives {
		l.t.mu.Lock()
		l.killLocked(errStoreClosed)
		l.t.mu.Unlock()
		if l.hasher != nil {
			l.hasher.halt()
		}
	}
	errs := []error{s.flush.close()}
	for _, l := range lives {
		errs = append(errs, l.closeFile())
		for _, name := range l.trash {
			_ = s.root.Remove(name)
		}
	}
	errs = append(errs, s.db.Close(), s.root.Close())
	s.log.Info("store closed", "dir", s.dir)
	return errors.Join(errs...)
}

// enter admits an operation unless the store is closed; pair with leave.
// Never call it from inside another admitted operation.
func (s *Store) enter() error {
	s.ops.RLock()
	if s.closed {
		s.ops.RUnlock()
		return errStoreClosed
	}
	return nil
}

func (s *Store) leave() { s.ops.RUnlock() }

// lockID serialises the structural operations on one task ID (create,
// open, close, delete, evict, import commit). I/O may happen under it.
func (s *Store) lockID(ctx context.Context, id protocol.TaskID) (unlock func(), err error) {
	for {
		unlock, wait := s.lockIDOrWait(id)
		if unlock != nil {
			return unlock, nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closing:
			return nil, errStoreClosed
		}
	}
}

// tryLockID is lockID without waiting.
func (s *Store) tryLockID(id protocol.TaskID) (unlock func(), ok bool) {
	unlock, _ = s.lockIDOrWait(id)
	return unlock, unlock != nil
}

func (s *Store) lockIDOrWait(id protocol.TaskID) (unlock func(), wait <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, busy := s.busy[id]; busy {
		return nil, ch
	}
	ch := make(chan struct{})
	s.busy[id] = ch
	return func() {
		s.mu.Lock()
		delete(s.busy, id)
		s.mu.Unlock()
		close(ch)
	}, nil
}

// lookup returns the stored task id, or nil.
func (s *Store) lookup(id protocol.TaskID) *task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tasks[id]
}

// Stat returns a task's metadata without opening it.
func (s *Store) Stat(_ context.Context, id protocol.TaskID) (storage.TaskInfo, error) {
	if err := s.enter(); err != nil {
		return storage.TaskInfo{}, err
	}
	defer s.leave()
	t := s.lookup(id)
	if t == nil {
		return storage.TaskInfo{}, fmt.Errorf("disk: task %s: %w", id.Short(), storage.ErrNotFound)
	}
	return t.snapshot(), nil
}

// List returns every task's metadata, ordered by ID.
func (s *Store) List(_ context.Context) ([]storage.TaskInfo, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	s.mu.Lock()
	out := make([]storage.TaskInfo, 0, len(s.tasks))
	for _, t := range s.tasks {
		out = append(out, t.snapshot())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b storage.TaskInfo) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return out, nil
}

// Usage reports space accounting. Bytes includes space reserved by
// imports in progress.
func (s *Store) Usage() storage.Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return storage.Usage{Bytes: s.used + s.reserved, Quota: s.opts.quota, Tasks: len(s.tasks)}
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }
