package disk

import (
	"context"
	"fmt"

	"github.com/dragonfly-p2p/df/protocol"
)

// cleanTmp empties tmp/: staging files of interrupted imports and files of
// deleted tasks that were still open when the process ended.
func (s *Store) cleanTmp() {
	entries, err := readDir(s.root, tmpDir)
	if err != nil {
		s.log.Warn("cannot list tmp", "err", err)
		return
	}
	for _, e := range entries {
		if err := s.root.RemoveAll(tmpDir + "/" + e.Name()); err != nil {
			s.log.Warn("cannot remove leftover", "file", e.Name(), "err", err)
		}
	}
	if len(entries) > 0 {
		s.log.Info("removed leftovers from tmp", "files", len(entries))
	}
}

// reconcile makes the files agree with the index: files of unknown tasks
// are removed, tasks whose data file is missing or has the wrong size are
// dropped, missing sidecars are rewritten.
func (s *Store) reconcile(ctx context.Context) error {
	const hasData, hasMeta = 1, 2
	seen := make(map[protocol.TaskID]uint8, len(s.tasks))
	shards, err := readDir(s.root, tasksDir)
	if err != nil {
		return fmt.Errorf("disk: list tasks: %w", err)
	}
	var orphans int
	for _, shard := range shards {
		dir := tasksDir + "/" + shard.Name()
		if !shard.IsDir() || !isShardName(shard.Name()) {
			s.log.Warn("removing unexpected entry", "name", dir)
			_ = s.root.RemoveAll(dir)
			continue
		}
		files, err := readDir(s.root, dir)
		if err != nil {
			return fmt.Errorf("disk: list %s: %w", dir, err)
		}
		for _, f := range files {
			id, ext, ok := parseTaskFile(f.Name())
			if ok && f.Type().IsRegular() && s.tasks[id] != nil && shardDir(id) == dir {
				if ext == dataExt {
					seen[id] |= hasData
				} else {
					seen[id] |= hasMeta
				}
				continue
			}
			orphans++
			if err := s.root.RemoveAll(dir + "/" + f.Name()); err != nil {
				s.log.Warn("cannot remove orphan", "file", f.Name(), "err", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if orphans > 0 {
		s.log.Info("removed files of unknown tasks", "files", orphans)
	}
	var drop []protocol.TaskID
	for id, t := range s.tasks {
		info := t.info
		if seen[id]&hasData == 0 {
			drop = append(drop, id)
			continue
		}
		if st, err := s.root.Stat(dataPath(id)); err != nil || st.Size() != info.Layout.ContentLength {
			drop = append(drop, id)
			continue
		}
		if seen[id]&hasMeta == 0 {
			if err := writeSidecar(s.root, info); err != nil {
				s.log.Warn("cannot rewrite missing sidecar", "task", id.Short(), "err", err)
			}
		}
		s.used += info.Layout.ContentLength
	}
	if len(drop) == 0 {
		return nil
	}
	err = s.db.Update(func(tx *boltTx) error {
		for _, id := range drop {
			if err := deleteTask(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("disk: drop tasks without data: %w", err)
	}
	for _, id := range drop {
		s.log.Warn("dropped task whose data file is missing or has the wrong size", "task", id.Short())
		s.removeFiles(id)
		delete(s.tasks, id)
	}
	return nil
}
