package disk

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// WritePiece streams piece n from r into the data file, hashing it on the
// way; see storage.Task.
func (h *handle) WritePiece(ctx context.Context, n uint32, want protocol.Digest, r io.Reader) (protocol.Digest, error) {
	l := h.l
	off, length, err := l.layout.Piece(n)
	if err != nil {
		return protocol.Digest{}, fmt.Errorf("disk: task %s: %w", h.t.id.Short(), err)
	}
	gen, have, verified, err := h.claim(ctx, n)
	if err != nil {
		return protocol.Digest{}, err
	}
	if verified {
		if !want.IsZero() && want != have {
			return protocol.Digest{}, fmt.Errorf("disk: task %s piece %d: %w: verified as %s, offered %s",
				h.t.id.Short(), n, storage.ErrDigestMismatch, have, want)
		}
		return have, nil
	}
	d, err := h.stream(ctx, off, length, r)
	if err == nil && !want.IsZero() && d != want {
		err = fmt.Errorf("disk: task %s piece %d: %w: got %s, want %s", h.t.id.Short(), n, storage.ErrDigestMismatch, d, want)
	}
	return h.settle(n, gen, d, err)
}

// claim makes the caller the writer of piece n. If another writer holds it,
// claim waits for it to settle; if the piece is verified it reports so.
func (h *handle) claim(ctx context.Context, n uint32) (gen uint64, d protocol.Digest, verified bool, err error) {
	l := h.l
	for {
		l.t.mu.Lock()
		if err := h.errLocked(); err != nil {
			l.t.mu.Unlock()
			return 0, d, false, err
		}
		switch l.state[n] {
		case pieceVerified:
			d = l.digests[n]
			l.t.mu.Unlock()
			return 0, d, true, nil
		case pieceMissing:
			l.state[n] = pieceWriting
			gen = l.gen.Load()
			l.t.mu.Unlock()
			return gen, d, false, nil
		}
		ch, ok := l.waiters[n]
		if !ok {
			ch = make(chan struct{})
			l.waiters[n] = ch
		}
		l.t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, d, false, ctx.Err()
		}
	}
}

// stream copies exactly length bytes from r to off through a bounded
// buffer, hashing them, and checks that r has nothing more.
func (h *handle) stream(ctx context.Context, off int64, length uint32, r io.Reader) (protocol.Digest, error) {
	l := h.l
	bufp := getBuf()
	defer putBuf(bufp)
	buf := *bufp
	hash := sha256.New()
	for done := int64(0); done < int64(length); {
		if err := ctx.Err(); err != nil {
			return protocol.Digest{}, err
		}
		k := min(int64(len(buf)), int64(length)-done)
		m, err := io.ReadFull(r, buf[:k])
		if m > 0 {
			hash.Write(buf[:m])
			if werr := l.writeAt(buf[:m], off+done); werr != nil {
				return protocol.Digest{}, fmt.Errorf("disk: task %s: write piece: %w", h.t.id.Short(), werr)
			}
			done += int64(m)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return protocol.Digest{}, fmt.Errorf("disk: task %s: %w: piece ended after %d of %d bytes",
				h.t.id.Short(), storage.ErrPieceLength, done, length)
		}
		if err != nil {
			return protocol.Digest{}, fmt.Errorf("disk: task %s: read piece: %w", h.t.id.Short(), err)
		}
	}
	var extra [1]byte
	if m, err := io.ReadFull(r, extra[:]); m > 0 {
		return protocol.Digest{}, fmt.Errorf("disk: task %s: %w: piece longer than %d bytes",
			h.t.id.Short(), storage.ErrPieceLength, length)
	} else if !errors.Is(err, io.EOF) {
		return protocol.Digest{}, fmt.Errorf("disk: task %s: read piece: %w", h.t.id.Short(), err)
	}
	l.writeback(off, int64(length))
	var d protocol.Digest
	hash.Sum(d[:0])
	return d, nil
}

// settle publishes piece n after a successful write, or releases it for
// another writer after a failed one.
func (h *handle) settle(n uint32, gen uint64, d protocol.Digest, werr error) (protocol.Digest, error) {
	l := h.l
	t := l.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if ch, ok := l.waiters[n]; ok {
		close(ch)
		delete(l.waiters, n)
	}
	if werr == nil {
		werr = h.errLocked()
	}
	if werr == nil && l.gen.Load() != gen {
		werr = fmt.Errorf("disk: task %s piece %d: task was reset during the write: %w", t.id.Short(), n, storage.ErrNotFound)
	}
	if werr != nil {
		if l.state[n] == pieceWriting {
			l.state[n] = pieceMissing
		}
		return protocol.Digest{}, werr
	}
	l.state[n] = pieceVerified
	l.digests[n] = d
	l.order = append(l.order, n)
	t.info.VerifiedPieces++
	l.notifyLocked()
	if l.hasher != nil && l.hasher.next == n {
		l.hasher.kick()
	}
	// Queued under t.mu so that a store Close (which kills the state under
	// t.mu before its final flush) either sees this piece queued or makes
	// the settle above fail.
	h.s.flush.addPiece(l, gen, n, d)
	return d, nil
}
