package download

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dragonfly-p2p/df/storage"
)

// WriteTo writes bytes [off, off+n) of the task to w in order, as soon as
// the pieces holding them are verified. It returns when every byte was
// written, the job failed, or ctx ended. Written bytes are verified piece by
// piece, except the first EarlyBytes of a Prompt download, which may come
// straight from the origin before piece 0 is verified; the whole-content
// check (which also compares those early bytes with the verified piece)
// ends the job, so callers that must vouch for the whole content wait for
// Wait afterwards.
func (j *Job) WriteTo(ctx context.Context, w io.Writer, off, n int64) (int64, error) {
	select {
	case <-j.layoutKnown:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if j.finished() && j.task == nil {
		return 0, j.Err()
	}
	if off < 0 || n < 0 || off > j.layout.ContentLength-n {
		return 0, fmt.Errorf("range %d+%d outside content of %d bytes", off, n, j.layout.ContentLength)
	}
	var written int64
	for written < n {
		pos := off + written
		piece, err := j.layout.PieceAt(pos)
		if err != nil {
			return written, err
		}
		if piece == 0 {
			// A Prompt download's first bytes, straight from the origin
			// (possibly before the task exists in the store).
			c, err := j.writeEarly(ctx, w, pos, n-written)
			written += c
			if err != nil {
				return written, err
			}
			if c > 0 {
				continue
			}
		}
		if err := j.awaitTask(ctx); err != nil {
			return written, err
		}
		if err := j.waitPiece(ctx, piece); err != nil {
			return written, err
		}
		rd, _, err := j.task.Piece(piece)
		if err != nil {
			return written, j.readFailed(ctx, fmt.Errorf("read piece %d: %w", piece, err))
		}
		start, _, _ := j.layout.Piece(piece)
		if skip := pos - start; skip > 0 {
			if _, err := io.CopyN(io.Discard, rd, skip); err != nil {
				return written, j.readFailed(ctx, err)
			}
		}
		pieceEnd := start + int64(j.layout.PieceLength)
		chunk := min(pieceEnd-pos, n-written)
		c, err := io.CopyN(w, rd, chunk)
		written += c
		if err != nil {
			return written, j.readFailed(ctx, err)
		}
	}
	return written, nil
}

// readFailed turns a failed read of a verified piece into the job's own
// error. A verified piece vanishes only when the whole content failed its
// digest and every piece was discarded: the job is then ending with that
// failure, and a reader must report it (and return only once the job ended,
// so that a caller retrying at once starts a new download rather than join
// the failing one). Other errors (the caller's writer) are returned as is.
func (j *Job) readFailed(ctx context.Context, err error) error {
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	select {
	case <-j.done:
		if jerr := j.Err(); jerr != nil {
			return jerr
		}
	case <-ctx.Done():
	}
	return err
}

// awaitTask waits until the task exists in the store (Ready).
func (j *Job) awaitTask(ctx context.Context) error {
	select {
	case <-j.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	if j.task == nil {
		if err := j.Err(); err != nil {
			return err
		}
		return fmt.Errorf("download of %s ended without a task", j.req.ID.Short())
	}
	return nil
}

// waitPiece blocks until piece n is verified, the job fails, or ctx ends.
func (j *Job) waitPiece(ctx context.Context, n uint32) error {
	for {
		changed := j.task.Changed()
		if j.task.Has(n) {
			return nil
		}
		j.SetCursor(n)
		select {
		case <-changed:
		case <-j.done:
			if j.task.Has(n) {
				return nil
			}
			if err := j.Err(); err != nil {
				return err
			}
			return fmt.Errorf("download ended without piece %d", n)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
