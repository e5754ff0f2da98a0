package disk

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// writebackEvery starts kernel writeback of an import every so many bytes,
// so the final fdatasync has little left to do.
const writebackEvery = 16 << 20

// Import stores content read from r as a complete task; see storage.Store.
func (s *Store) Import(ctx context.Context, spec storage.ImportSpec, r io.Reader) (storage.TaskInfo, error) {
	layout, err := validateImport(spec)
	if err != nil {
		return storage.TaskInfo{}, err
	}
	if err := s.enter(); err != nil {
		return storage.TaskInfo{}, err
	}
	info, evicted, err := s.importTask(ctx, spec, layout, r)
	s.leave()
	s.notifyEvicted(evicted)
	return info, err
}

func validateImport(spec storage.ImportSpec) (protocol.Layout, error) {
	switch spec.Kind {
	case storage.KindContent:
	case storage.KindURL, storage.KindNamed:
		if spec.ID == (protocol.TaskID{}) {
			return protocol.Layout{}, fmt.Errorf("disk: import: %w: a %s task needs an ID", ErrInvalidSpec, spec.Kind)
		}
	default:
		return protocol.Layout{}, fmt.Errorf("disk: import: %w: unknown kind %d", ErrInvalidSpec, spec.Kind)
	}
	layout, err := protocol.NewLayout(spec.Size, spec.PieceLength)
	if err != nil {
		return layout, fmt.Errorf("disk: import: %w", err)
	}
	return layout, nil
}

// staging is an import's file under tmp/.
type staging struct {
	s       *Store
	name    string
	f       *os.File
	size    int64
	direct  bool  // f uses direct I/O
	padded  bool  // the last direct write went past size
	written int64 // bytes handed to writeback so far (buffered I/O)
}

func (s *Store) importTask(ctx context.Context, spec storage.ImportSpec, layout protocol.Layout, r io.Reader) (storage.TaskInfo, []protocol.TaskID, error) {
	size := layout.ContentLength
	evicted, err := s.reserve(ctx, size)
	if err != nil {
		return storage.TaskInfo{}, evicted, err
	}
	reserved := true
	defer func() {
		if reserved {
			s.unreserve(size)
		}
	}()
	st, err := s.newStaging(size)
	if err != nil {
		return storage.TaskInfo{}, evicted, err
	}
	defer st.discard()
	res, err := hashStream(ctx, r, layout, st.write, s.closing)
	if err == nil {
		err = st.finish()
	}
	if err != nil {
		return storage.TaskInfo{}, evicted, fmt.Errorf("disk: import: %w", err)
	}
	id := spec.ID
	if spec.Kind == storage.KindContent {
		id = protocol.ContentTaskID(res.content)
	}
	now := s.opts.now()
	info := storage.TaskInfo{
		ID:             id,
		Kind:           spec.Kind,
		Layout:         layout,
		ContentDigest:  res.content,
		Origin:         spec.Origin,
		VerifiedPieces: layout.PieceCount(),
		Complete:       true,
		CreatedAt:      now,
		AccessedAt:     now,
		CompletedAt:    now,
	}
	info, committed, err := s.commitImport(ctx, st, info, res.pieces)
	if committed {
		reserved = false
	}
	return info, evicted, err
}

// newStaging creates a pre-allocated staging file.
func (s *Store) newStaging(size int64) (*staging, error) {
	name := tmpDir + "/import-" + randomSuffix() + dataExt
	f, direct, err := openStaging(s.root, name)
	if err != nil {
		return nil, fmt.Errorf("disk: import: %w", err)
	}
	st := &staging{s: s, name: name, f: f, size: size, direct: direct}
	if err := preallocate(f, size); err != nil {
		st.discard()
		return nil, fmt.Errorf("disk: import: %w", noSpace(err))
	}
	return st, nil
}

// write is the pipeline's sink: write a chunk at its offset. Direct
// writes of the last, short chunk are padded with zeros to the alignment
// (finish truncates the file back). Buffered writes start writeback of
// every completed writebackEvery bytes.
func (st *staging) write(p []byte, off int64) error {
	if st.direct {
		if tail := len(p) % directAlign; tail != 0 && off%directAlign == 0 && cap(p)-len(p) >= directAlign-tail {
			n := len(p)
			p = p[:n+directAlign-tail]
			clear(p[n:])
			st.padded = true
		}
		if off%directAlign == 0 && len(p)%directAlign == 0 {
			_, err := st.f.WriteAt(p, off)
			return noSpace(err)
		}
		// Misaligned (never with the pipeline's chunks): go buffered.
		if err := clearDirect(st.f); err != nil {
			return err
		}
		st.direct = false
	}
	if _, err := st.f.WriteAt(p, off); err != nil {
		return noSpace(err)
	}
	if end := off + int64(len(p)); end-st.written >= writebackEvery {
		startWriteback(st.f, st.written, end-st.written)
		st.written = end
	}
	return nil
}

// finish trims direct-write padding and makes the content durable.
func (st *staging) finish() error {
	if st.padded {
		if err := st.f.Truncate(st.size); err != nil {
			return err
		}
	}
	return noSpace(datasync(st.f))
}

// discard closes and removes the staging file unless it was committed.
func (st *staging) discard() {
	if st.f != nil {
		_ = st.f.Close()
		st.f = nil
	}
	if st.name != "" {
		if err := st.s.root.Remove(st.name); err != nil && !isNotExist(err) {
			st.s.log.Warn("cannot remove staging file", "file", st.name, "err", err)
		}
		st.name = ""
	}
}

// commitImport moves the staged content under its ID and records it. If
// the task already exists complete with the same content, the staged copy
// is dropped and the existing task returned.
func (s *Store) commitImport(ctx context.Context, st *staging, info storage.TaskInfo, pieces []protocol.Digest) (storage.TaskInfo, bool, error) {
	id := info.ID
	unlock, err := s.lockID(ctx, id)
	if err != nil {
		return storage.TaskInfo{}, false, err
	}
	defer unlock()
	if t := s.lookup(id); t != nil {
		t.mu.Lock()
		old, handles := t.info, t.handles
		t.mu.Unlock()
		switch {
		case old.Complete && old.ContentDigest == info.ContentDigest:
			s.touch(t)
			return t.snapshot(), false, nil
		case old.Complete:
			return storage.TaskInfo{}, false, fmt.Errorf("disk: import %s: %w: stored with content %s, imported %s",
				id.Short(), storage.ErrExists, old.ContentDigest, info.ContentDigest)
		case handles > 0:
			return storage.TaskInfo{}, false, fmt.Errorf("disk: import %s: %w: an incomplete copy is open", id.Short(), storage.ErrExists)
		}
		if err := s.removeTask(t); err != nil { // incomplete and idle: replace it
			return storage.TaskInfo{}, false, err
		}
	}
	if err := st.f.Close(); err != nil {
		return storage.TaskInfo{}, false, fmt.Errorf("disk: import: %w", err)
	}
	st.f = nil
	if err := s.install(st, info, pieces); err != nil {
		return storage.TaskInfo{}, false, fmt.Errorf("disk: import %s: %w", id.Short(), noSpace(err))
	}
	size := info.Layout.ContentLength
	s.mu.Lock()
	s.tasks[id] = newTask(info)
	s.reserved -= size
	s.used += size
	s.mu.Unlock()
	s.log.Info("imported", "task", id.Short(), "kind", info.Kind, "bytes", size, "digest", info.ContentDigest)
	return info, true, nil
}

// install writes the sidecar, renames the staging file into place and
// records the task; on failure it leaves nothing behind.
func (s *Store) install(st *staging, info storage.TaskInfo, pieces []protocol.Digest) (err error) {
	id := info.ID
	defer func() {
		if err != nil {
			s.removeFiles(id)
		}
	}()
	if err := mkdirShard(s.root, id); err != nil {
		return err
	}
	if err := writeSidecar(s.root, info); err != nil {
		return err
	}
	if err := s.root.Rename(st.name, dataPath(id)); err != nil {
		return err
	}
	st.name = ""
	if err := syncDir(s.root, shardDir(id)); err != nil {
		return err
	}
	return s.commitComplete(info, pieces)
}
