package disk

import (
	"context"
	"fmt"
	"path"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Delete removes a task; see storage.Store.
func (s *Store) Delete(ctx context.Context, id protocol.TaskID) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	unlock, err := s.lockID(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	t := s.lookup(id)
	if t == nil {
		return fmt.Errorf("disk: task %s: %w", id.Short(), storage.ErrNotFound)
	}
	if err := s.removeTask(t); err != nil {
		return err
	}
	s.log.Info("task deleted", "task", id.Short())
	return nil
}

// removeTask forgets t: its bbolt entry first, then its files. Files of a
// task with open handles are moved into tmp/ and removed when the last
// handle closes. The caller holds t's ID lock.
func (s *Store) removeTask(t *task) error {
	t.mu.Lock()
	t.removed = true
	t.mu.Unlock()
	// Every other transaction writing this task checks removed inside the
	// transaction, so none can resurrect it after this one.
	if err := s.db.Update(func(tx *boltTx) error { return deleteTask(tx, t.id) }); err != nil {
		t.mu.Lock()
		t.removed = false
		t.mu.Unlock()
		return fmt.Errorf("disk: remove task %s: %w", t.id.Short(), noSpace(err))
	}
	size := t.snapshot().Layout.ContentLength
	s.mu.Lock()
	if s.tasks[t.id] == t {
		delete(s.tasks, t.id)
		s.used -= size
	}
	s.mu.Unlock()

	t.mu.Lock()
	l := t.live
	if l != nil {
		l.killLocked(errTaskDeleted)
	}
	t.mu.Unlock()
	if l == nil {
		s.removeFiles(t.id)
		return nil
	}
	trash := s.moveToTrash(t.id)
	t.mu.Lock()
	l.trash = append(l.trash, trash...)
	t.mu.Unlock()
	return nil
}

// removeFiles deletes a task's data file and sidecar.
func (s *Store) removeFiles(id protocol.TaskID) {
	for _, name := range []string{dataPath(id), metaPath(id)} {
		if err := s.root.Remove(name); err != nil && !isNotExist(err) {
			s.log.Warn("cannot remove task file", "file", name, "err", err)
		}
	}
}

// moveToTrash renames a task's files into tmp/ (their open descriptors
// keep working) so the ID is free at once, and returns the new names.
func (s *Store) moveToTrash(id protocol.TaskID) []string {
	var moved []string
	for _, name := range []string{dataPath(id), metaPath(id)} {
		to := path.Join(tmpDir, "deleted-"+id.String()+"-"+randomSuffix()+path.Ext(name))
		if err := s.root.Rename(name, to); err != nil {
			if !isNotExist(err) {
				s.log.Warn("cannot move deleted task file aside; removing it", "file", name, "err", err)
				_ = s.root.Remove(name)
			}
			continue
		}
		moved = append(moved, to)
	}
	return moved
}
