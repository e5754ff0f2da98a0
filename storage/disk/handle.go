package disk

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// handle is an open storage.Task. Handles of one task share its live state.
type handle struct {
	s      *Store
	t      *task
	l      *live
	closed atomic.Bool
}

var _ storage.Task = (*handle)(nil)

// errLocked is why the handle is unusable, or nil. t.mu held.
func (h *handle) errLocked() error {
	if h.closed.Load() {
		return errHandleClosed
	}
	return h.l.dead
}

// fastErr is errLocked without the lock in the common, healthy case.
func (h *handle) fastErr() error {
	if h.closed.Load() {
		return errHandleClosed
	}
	if h.l.isDead.Load() {
		h.t.mu.Lock()
		defer h.t.mu.Unlock()
		return h.l.dead
	}
	return nil
}

// Info returns a snapshot of the task's metadata.
func (h *handle) Info() storage.TaskInfo { return h.t.snapshot() }

// Err returns nil while the handle is usable.
func (h *handle) Err() error {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	return h.errLocked()
}

// Has reports whether piece n is verified.
func (h *handle) Has(n uint32) bool {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	return h.errLocked() == nil && n < uint32(len(h.l.state)) && h.l.state[n] == pieceVerified
}

// Piece returns a reader over verified piece n.
func (h *handle) Piece(n uint32) (io.Reader, protocol.PieceInfo, error) {
	l := h.l
	off, length, err := l.layout.Piece(n)
	if err != nil {
		return nil, protocol.PieceInfo{}, fmt.Errorf("disk: task %s: %w: %w", h.t.id.Short(), storage.ErrNotFound, err)
	}
	h.t.mu.Lock()
	if err := h.errLocked(); err != nil {
		h.t.mu.Unlock()
		return nil, protocol.PieceInfo{}, err
	}
	if l.state[n] != pieceVerified {
		h.t.mu.Unlock()
		return nil, protocol.PieceInfo{}, fmt.Errorf("disk: task %s piece %d: %w", h.t.id.Short(), n, storage.ErrNotFound)
	}
	info := protocol.PieceInfo{Number: n, Digest: l.digests[n]}
	gen := l.gen.Load()
	h.t.mu.Unlock()
	h.s.touch(h.t)
	return io.NewSectionReader(&pieceReaderAt{h: h, gen: gen}, off, int64(length)), info, nil
}

// pieceReaderAt reads a verified piece and fails, rather than return bytes
// of another generation, if the task's pieces were discarded meanwhile.
type pieceReaderAt struct {
	h   *handle
	gen uint64
}

func (r *pieceReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := r.h.fastErr(); err != nil {
		return 0, err
	}
	n, err := r.h.l.readAt(p, off)
	if r.h.l.gen.Load() != r.gen {
		return 0, fmt.Errorf("disk: task %s: piece discarded while read: %w", r.h.t.id.Short(), storage.ErrNotFound)
	}
	return n, err
}

// Pieces returns the pieces verified since cursor, in verification order.
// A cursor beyond the end (the task was reset since) starts over from 0.
func (h *handle) Pieces(cursor int) ([]protocol.PieceInfo, int) {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	if h.errLocked() != nil {
		return nil, cursor
	}
	l := h.l
	if cursor < 0 || cursor > len(l.order) {
		cursor = 0
	}
	if cursor == len(l.order) {
		return nil, cursor
	}
	out := make([]protocol.PieceInfo, 0, len(l.order)-cursor)
	for _, n := range l.order[cursor:] {
		out = append(out, protocol.PieceInfo{Number: n, Digest: l.digests[n]})
	}
	return out, len(l.order)
}

// Changed returns a channel closed at the task's next change; an already
// closed one once the handle is unusable.
func (h *handle) Changed() <-chan struct{} {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	if h.errLocked() != nil {
		return closedChan
	}
	return h.l.changed
}

// ReaderAt reads a complete task's content.
func (h *handle) ReaderAt() (io.ReaderAt, error) {
	h.t.mu.Lock()
	err := h.errLocked()
	complete := h.t.info.Complete
	h.t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !complete {
		return nil, fmt.Errorf("disk: task %s: %w", h.t.id.Short(), storage.ErrIncomplete)
	}
	h.s.touch(h.t)
	return &contentReaderAt{h: h, size: h.l.layout.ContentLength}, nil
}

// contentReaderAt reads a complete task; it fails once the handle does.
type contentReaderAt struct {
	h    *handle
	size int64
}

func (r *contentReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := r.h.fastErr(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("disk: negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	short := false
	if rem := r.size - off; int64(len(p)) > rem {
		p, short = p[:rem], true
	}
	n, err := r.h.l.readAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// SetOrigin updates the task's revalidation metadata, durably.
func (h *handle) SetOrigin(ctx context.Context, o storage.Origin) error {
	s := h.s
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := h.Err(); err != nil {
		return err
	}
	h.t.recMu.Lock()
	defer h.t.recMu.Unlock()
	unlock, err := s.lockID(ctx, h.t.id)
	if err != nil {
		return err
	}
	defer unlock()
	info := h.t.snapshot()
	info.Origin = o
	if err := s.persistRecord(h.t, info); err != nil {
		return err
	}
	h.t.mu.Lock()
	h.t.info.Origin = o
	h.t.mu.Unlock()
	return nil
}

// Close releases the handle; the last one releases the task's live state.
func (h *handle) Close() error {
	if !h.closed.CompareAndSwap(false, true) {
		return nil
	}
	s := h.s
	if s.enter() != nil {
		return nil // the store is closed and released everything
	}
	defer s.leave()
	unlock, err := s.lockID(context.Background(), h.t.id)
	if err != nil {
		return nil
	}
	defer unlock()
	return s.detach(h.t, h.l)
}
