package disk

import (
	"sync"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// task is the store's in-memory entry for one stored task: its metadata,
// always present, and its live state while handles are open.
//
// Lock order: task.recMu, then the task's ID lock (Store.lockID), then
// Store.mu, then task.mu, then flusher.mu (a leaf). None of these mutexes
// is held while starting a bbolt write transaction; a transaction may take
// task.mu or Store.mu briefly inside, never the reverse.
type task struct {
	id protocol.TaskID
	// recMu serialises the read-modify-write of the task's record (Complete,
	// SetOrigin) so concurrent rewrites cannot lose an update.
	recMu sync.Mutex

	mu   sync.Mutex
	info storage.TaskInfo // VerifiedPieces and AccessedAt kept current
	// accessDirty: AccessedAt changed since it was last persisted.
	accessDirty bool
	// removed: deleted or evicted; no transaction may write the task again.
	removed bool
	// handles counts open handles; changed only under the task's ID lock.
	handles int
	// live is the open state, non-nil while handles > 0; set and cleared
	// only under the task's ID lock.
	live *live
}

func newTask(info storage.TaskInfo) *task {
	return &task{id: info.ID, info: info}
}

// snapshot returns a copy of the task's metadata.
func (t *task) snapshot() storage.TaskInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.info
}

// idle reports whether the task has no open handles (GC may evict it).
func (t *task) idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.handles == 0 && t.live == nil && !t.removed
}

// touch records an access in memory; the flusher persists it later.
func (s *Store) touch(t *task) {
	now := s.opts.now()
	t.mu.Lock()
	t.info.AccessedAt = now
	queue := !t.accessDirty && !t.removed
	t.accessDirty = true
	t.mu.Unlock()
	if queue {
		s.flush.addAccess(t)
	}
}

// isRemoved reports whether the task was deleted or evicted.
func (t *task) isRemoved() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.removed
}
