package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// errCorrupt marks a meta.db that cannot be trusted: it is quarantined and
// rebuilt from the sidecars.
var errCorrupt = errors.New("meta.db is corrupt")

// openMeta opens meta.db and loads the task index, quarantining and
// rebuilding a corrupt database.
func (s *Store) openMeta(ctx context.Context) error {
	fi, statErr := s.root.Stat(dbName)
	lost := isNotExist(statErr) || statErr == nil && fi.Size() == 0
	db, err := s.openBolt()
	if err == nil {
		var tasks map[protocol.TaskID]*task
		if tasks, err = s.loadIndex(db); err == nil {
			s.db, s.tasks = db, tasks
			if lost { // a new store, or meta.db was deleted: adopt what the sidecars vouch for
				return s.rebuild(ctx)
			}
			return nil
		}
		closeQuietly(db)
	}
	if !errors.Is(err, errCorrupt) {
		return err
	}
	aside := dbName + ".corrupt-" + s.opts.now().UTC().Format("20060102T150405.000000000Z")
	s.log.Error("meta.db is corrupt; moving it aside and rebuilding the metadata from the sidecars",
		"err", err, "quarantined_as", filepath.Join(s.dir, aside))
	if rerr := s.root.Rename(dbName, aside); rerr != nil {
		return fmt.Errorf("disk: %w; moving it aside failed too: %w", err, rerr)
	}
	if s.db, err = s.openBolt(); err != nil {
		return err
	}
	s.tasks = make(map[protocol.TaskID]*task)
	return s.rebuild(ctx)
}

// openBolt opens meta.db through the root, with the lock timeout. bbolt
// may panic or fault on a damaged file: both become errCorrupt.
func (s *Store) openBolt() (db *bolt.DB, err error) {
	var file *os.File
	var openErr error
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close() // also drops the flock
			}
			db, err = nil, fmt.Errorf("%w: bbolt failed opening it: %v", errCorrupt, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err = bolt.Open(filepath.Join(s.dir, dbName), filePerm, &bolt.Options{
		Timeout: s.opts.lockTimeout,
		OpenFile: func(_ string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := s.root.OpenFile(dbName, flag, perm)
			file, openErr = f, err
			return f, err
		},
	})
	var errno syscall.Errno
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("disk: %s: %w: its lock was not released within %v; is another dfnode running on it?",
			s.dir, storage.ErrLocked, s.opts.lockTimeout)
	case openErr != nil || errors.As(err, &errno):
		return nil, fmt.Errorf("disk: open %s: %w", dbName, err)
	default:
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
}

// loadIndex reads every task record and counts its verified pieces, then
// runs bbolt's consistency check. Any structural damage, including a
// panic or memory fault inside bbolt, is reported as errCorrupt; a single
// undecodable record only drops that task.
func (s *Store) loadIndex(db *bolt.DB) (tasks map[protocol.TaskID]*task, err error) {
	defer func() {
		if r := recover(); r != nil {
			tasks, err = nil, fmt.Errorf("%w: reading it failed: %v", errCorrupt, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	fi, err := s.root.Stat(dbName)
	if err != nil {
		return nil, err
	}
	tasks = make(map[protocol.TaskID]*task)
	var drop [][]byte
	err = db.View(func(tx *boltTx) error {
		if tx.Size() > fi.Size() {
			return fmt.Errorf("%w: %d bytes long but its metadata spans %d (truncated)", errCorrupt, fi.Size(), tx.Size())
		}
		all := tx.Bucket(bucketTasks)
		if all == nil {
			return nil
		}
		return all.ForEach(func(k, v []byte) error {
			info, err := loadTask(all, k, v)
			if err != nil {
				s.log.Warn("dropping unreadable task record", "key", fmt.Sprintf("%x", k), "err", err)
				drop = append(drop, append([]byte(nil), k...))
				return nil
			}
			tasks[info.ID] = newTask(info)
			return nil
		})
	})
	if err == nil {
		err = db.View(func(tx *boltTx) error {
			for cerr := range tx.Check() {
				if err == nil {
					err = fmt.Errorf("%w: consistency check: %w", errCorrupt, cerr)
				}
			}
			return err
		})
	}
	if err == nil && len(drop) > 0 {
		err = db.Update(func(tx *boltTx) error {
			all := tx.Bucket(bucketTasks)
			for _, k := range drop {
				if all.Bucket(k) != nil {
					if err := all.DeleteBucket(k); err != nil {
						return err
					}
				} else if err := all.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	return tasks, nil
}

// loadTask decodes one entry of the tasks bucket.
func loadTask(all *bolt.Bucket, k, v []byte) (storage.TaskInfo, error) {
	var id protocol.TaskID
	if v != nil || len(k) != len(id) {
		return storage.TaskInfo{}, fmt.Errorf("%w: not a task bucket", errBadRecord)
	}
	copy(id[:], k)
	b := all.Bucket(k)
	info, err := decodeRecord(b.Get(keyRecord), id)
	if err != nil {
		return info, err
	}
	count := info.Layout.PieceCount()
	var n uint32
	forEachPiece(b, count, func(uint32, protocol.Digest) { n++ })
	if info.Complete && n != count {
		return info, fmt.Errorf("%w: complete with %d of %d pieces recorded", errBadRecord, n, count)
	}
	info.VerifiedPieces = n
	if info.AccessedAt = getAccess(b); info.AccessedAt.IsZero() {
		info.AccessedAt = info.CreatedAt
	}
	return info, nil
}

// closeQuietly closes a database that may be damaged.
func closeQuietly(db *bolt.DB) {
	defer func() { _ = recover() }()
	_ = db.Close()
}
