package disk

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// rebuild restores, from the sidecars (meta.db being new, lost or
// quarantined), every task whose data file hashes
// to the content digest its sidecar records (recomputing piece digests on
// the way); every other task is dropped.
func (s *Store) rebuild(ctx context.Context) error {
	shards, err := readDir(s.root, tasksDir)
	if err != nil {
		return fmt.Errorf("disk: rebuild: %w", err)
	}
	var restored, dropped int
	for _, shard := range shards {
		if !shard.IsDir() || !isShardName(shard.Name()) {
			continue
		}
		files, err := readDir(s.root, tasksDir+"/"+shard.Name())
		if err != nil {
			return fmt.Errorf("disk: rebuild: %w", err)
		}
		for _, f := range files {
			id, ext, ok := parseTaskFile(f.Name())
			if !ok || ext != metaExt || shardDir(id) != tasksDir+"/"+shard.Name() {
				continue // leftovers go in reconcile
			}
			info, err := s.restore(ctx, id)
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			if err != nil {
				s.log.Warn("rebuild: dropping task", "task", id.Short(), "reason", err)
				s.removeFiles(id)
				dropped++
				continue
			}
			s.log.Info("rebuild: restored complete task", "task", id.Short(), "bytes", info.Layout.ContentLength)
			s.tasks[id] = newTask(info)
			restored++
		}
	}
	if restored+dropped > 0 {
		s.log.Warn("metadata rebuilt from sidecars", "restored", restored, "dropped", dropped)
	}
	return nil
}

// restore verifies one task's data against its sidecar and records it
// complete.
func (s *Store) restore(ctx context.Context, id protocol.TaskID) (storage.TaskInfo, error) {
	info, err := readSidecar(s.root, id)
	if err != nil {
		return info, err
	}
	if info.ContentDigest.IsZero() {
		return info, errors.New("content digest unknown: the task never completed")
	}
	f, err := s.root.Open(dataPath(id))
	if err != nil {
		return info, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return info, err
	}
	if !st.Mode().IsRegular() || st.Size() != info.Layout.ContentLength {
		return info, fmt.Errorf("data file is %d bytes, want %d", st.Size(), info.Layout.ContentLength)
	}
	res, err := hashStream(ctx, io.NewSectionReader(f, 0, st.Size()), info.Layout, nil, nil)
	if err != nil {
		return info, err
	}
	if res.content != info.ContentDigest {
		return info, fmt.Errorf("data hashes to %s, sidecar records %s", res.content, info.ContentDigest)
	}
	if err := datasync(f); err != nil { // what was read may not have reached the disk yet
		return info, err
	}
	now := s.opts.now()
	wasComplete := info.Complete
	info.Complete = true
	if info.CompletedAt.IsZero() {
		info.CompletedAt = now
	}
	info.AccessedAt = now
	info.VerifiedPieces = info.Layout.PieceCount()
	if !wasComplete {
		if err := writeSidecar(s.root, info); err != nil {
			return info, err
		}
	}
	return info, s.commitComplete(info, res.pieces)
}

// commitComplete records a complete task and all its piece digests in one
// transaction.
func (s *Store) commitComplete(info storage.TaskInfo, pieces []protocol.Digest) error {
	rec, err := encodeRecord(info)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *boltTx) error {
		b, err := putTask(tx, info.ID, rec)
		if err != nil {
			return err
		}
		if err := putAccess(b, info.AccessedAt); err != nil {
			return err
		}
		if err := clearPieces(b); err != nil {
			return err
		}
		b.Bucket(bucketPieces).FillPercent = 1 // appended in key order
		for n, d := range pieces {
			if err := putPiece(b, uint32(n), d); err != nil {
				return err
			}
		}
		return nil
	})
}
