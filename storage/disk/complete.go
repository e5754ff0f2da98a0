package disk

import (
	"context"
	"fmt"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Complete checks the whole content and marks the task complete durably;
// see storage.Task.
func (h *handle) Complete(ctx context.Context, want protocol.Digest) (storage.TaskInfo, error) {
	s := h.s
	if err := s.enter(); err != nil {
		return storage.TaskInfo{}, err
	}
	defer s.leave()
	t, l := h.t, h.l
	t.recMu.Lock()
	defer t.recMu.Unlock()
	t.mu.Lock()
	err := h.errLocked()
	info := t.info
	t.mu.Unlock()
	if err != nil {
		return storage.TaskInfo{}, err
	}
	if info.Complete {
		if !want.IsZero() && want != info.ContentDigest {
			return storage.TaskInfo{}, fmt.Errorf("disk: task %s: %w: complete with %s, expected %s",
				t.id.Short(), storage.ErrDigestMismatch, info.ContentDigest, want)
		}
		return info, nil
	}
	if count := l.layout.PieceCount(); info.VerifiedPieces < count {
		return storage.TaskInfo{}, fmt.Errorf("disk: task %s: %w: %d of %d pieces verified",
			t.id.Short(), storage.ErrIncomplete, info.VerifiedPieces, count)
	}
	sum, err := l.waitSum(ctx)
	if err != nil {
		return storage.TaskInfo{}, err
	}
	if err := s.flush.flushNow(); err != nil {
		return storage.TaskInfo{}, fmt.Errorf("disk: task %s: record pieces: %w", t.id.Short(), err)
	}
	if err := l.datasync(); err != nil {
		return storage.TaskInfo{}, fmt.Errorf("disk: task %s: %w", t.id.Short(), noSpace(err))
	}
	for _, exp := range []protocol.Digest{want, info.ContentDigest} {
		if !exp.IsZero() && exp != sum {
			s.discard(t, l)
			return storage.TaskInfo{}, fmt.Errorf("disk: task %s: %w: content is %s, expected %s; every piece discarded",
				t.id.Short(), storage.ErrDigestMismatch, sum, exp)
		}
	}
	return s.markComplete(ctx, t, l, sum)
}

// discard forgets every verified piece of a task whose content failed its
// whole digest: which piece lied is unknown.
func (s *Store) discard(t *task, l *live) {
	t.mu.Lock()
	l.discardLocked()
	t.mu.Unlock()
	err := s.db.Update(func(tx *boltTx) error {
		if t.isRemoved() {
			return nil
		}
		if b := taskBucket(tx, t.id); b != nil {
			return clearPieces(b)
		}
		return nil
	})
	if err != nil {
		s.log.Error("cannot forget the pieces of a task that failed its content digest", "task", t.id.Short(), "err", err)
		return
	}
	s.log.Warn("content digest mismatch: discarded every piece", "task", t.id.Short())
}

// markComplete records the content digest and completion, sidecar first.
func (s *Store) markComplete(ctx context.Context, t *task, l *live, sum protocol.Digest) (storage.TaskInfo, error) {
	unlock, err := s.lockID(ctx, t.id)
	if err != nil {
		return storage.TaskInfo{}, err
	}
	defer unlock()
	info := t.snapshot()
	info.ContentDigest = sum
	info.Complete = true
	info.CompletedAt = s.opts.now()
	if err := s.persistRecord(t, info); err != nil {
		return storage.TaskInfo{}, err
	}
	t.mu.Lock()
	t.info.ContentDigest = sum
	t.info.Complete = true
	t.info.CompletedAt = info.CompletedAt
	l.notifyLocked()
	out := t.info
	t.mu.Unlock()
	if l.hasher != nil {
		l.hasher.halt()
	}
	s.log.Debug("task complete", "task", t.id.Short(), "digest", sum, "bytes", info.Layout.ContentLength)
	return out, nil
}

// persistRecord rewrites a task's sidecar and bbolt record from info. The
// caller holds the task's ID lock, so the task cannot be removed meanwhile.
func (s *Store) persistRecord(t *task, info storage.TaskInfo) error {
	if t.isRemoved() {
		return errTaskDeleted
	}
	rec, err := encodeRecord(info)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.root, metaPath(t.id), rec); err != nil {
		return fmt.Errorf("disk: task %s: sidecar: %w", t.id.Short(), noSpace(err))
	}
	err = s.db.Update(func(tx *boltTx) error {
		if t.isRemoved() {
			return errTaskDeleted
		}
		_, err := putTask(tx, t.id, rec)
		return err
	})
	if err != nil {
		return fmt.Errorf("disk: task %s: record: %w", t.id.Short(), noSpace(err))
	}
	return nil
}
