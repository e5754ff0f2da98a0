package download

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dragonfly-p2p/df/node/ratelimit"
	"github.com/dragonfly-p2p/df/protocol"
)

// EarlyBytes is how much of the content's start a Prompt download fetches
// from the origin as soon as it knows it is the one to go there — its
// scheduler sent it to the origin with no parent, or (DHT only) the
// provider lookup found nobody holding the content — without waiting for
// piece 0 or the gather window: enough for a first byte now, small enough
// that peers starting the same DHT-only download at the same moment (each
// fetching its own early bytes before they find each other) cost the
// origin little: 64 KiB per extra peer, and nothing once a provider exists.
// A scheduler sends one peer to the origin, so there it costs nothing.
const EarlyBytes = 64 << 10

// earlyLookupWait bounds how long the early fetch waits for the provider
// lookup to say whether a peer has the content. A lookup that ends with no
// provider (a content nobody has yet: the common case on loopback clusters
// within a few milliseconds) lets it start at once. It bounds the wait for
// a scheduler's first decision too; none by then means no early bytes.
const earlyLookupWait = 50 * time.Millisecond

var (
	// errEarlyMismatch: the early bytes differ from the verified content.
	errEarlyMismatch = errors.New("the origin's first bytes differ from the verified content")
	// errPeerHasIt: no early bytes, a peer provides the content (or the
	// scheduler did not send this node alone to the origin).
	errPeerHasIt = errors.New("a peer provides the content")
)

// mayFetchEarly says whether this node is the one to fetch the content's
// first bytes from the origin now: with a scheduler, when its first
// decision sent this node to the origin without parents (it sends one
// peer of a new task there; the others get that peer as a parent), else
// when the provider lookup found nobody.
func (j *Job) mayFetchEarly(ctx context.Context) bool {
	if !j.scheduled.Load() {
		return j.nobodyHasIt(ctx)
	}
	deadline := time.NewTimer(earlyLookupWait)
	defer deadline.Stop()
	select {
	case <-j.decided:
		return j.sentAlone.Load()
	case <-deadline.C:
	case <-j.done:
	case <-ctx.Done():
	}
	return false
}

// noteDecision records the scheduler's first decision for mayFetchEarly.
func (j *Job) noteDecision(d Decision) {
	j.decideOnce.Do(func() {
		j.sentAlone.Store(d.BackToSource && len(d.Parents) == 0 && d.Err == nil && !d.Fallback)
		close(j.decided)
	})
}

// nobodyHasIt waits (at most earlyLookupWait) for the provider lookup: true
// when it ended without a provider or did not answer in time, false as soon
// as it found one.
func (j *Job) nobodyHasIt(ctx context.Context) bool {
	if j.found == nil {
		return true
	}
	deadline := time.NewTimer(earlyLookupWait)
	defer deadline.Stop()
	for {
		changed := j.found.changes()
		idle, found, _ := j.found.idle()
		switch {
		case found > 0:
			return false
		case idle:
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// earlyBytes holds the first bytes of a content, fetched from the origin at
// once for a waiting reader. They are served to readers before piece 0 is
// verified (only bytes that came from the origin itself, never a peer's),
// become the head of piece 0 when this node fetches that piece, and are
// compared with the verified piece 0 before the download reports success:
// a reader that waits for Wait before its last byte never completes on
// early bytes that did not match.
type earlyBytes struct {
	mu      sync.Mutex
	buf     []byte
	done    bool // no more bytes will come
	err     error
	changed chan struct{} // closed and replaced on every change
	served  atomic.Bool   // a reader was given some of them
}

func newEarly() *earlyBytes { return &earlyBytes{changed: make(chan struct{})} }

func (e *earlyBytes) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// fetch reads the first EarlyBytes (fewer for a shorter content: the range
// is then refused and nothing is kept) from the origin, unless the
// provider lookup shows that a peer has (or is fetching) the content.
func (e *earlyBytes) fetch(ctx context.Context, j *Job) {
	err := func() error {
		if !j.mayFetchEarly(ctx) {
			return errPeerHasIt
		}
		body, err := j.d.origin.OpenRange(ctx, j.sourceReq(), 0, EarlyBytes, "")
		if err != nil {
			return err
		}
		defer body.Close()
		r := ratelimit.NewReader(ctx, body, j.d.limit, j.taskLimiter())
		chunk := make([]byte, 16<<10)
		for {
			n, err := r.Read(chunk)
			if n > 0 {
				j.bytesSource.Add(int64(n))
				j.d.metrics.bytes.WithLabelValues("source").Add(float64(n))
				e.mu.Lock()
				e.buf = append(e.buf, chunk[:n]...)
				e.notifyLocked()
				e.mu.Unlock()
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}()
	e.mu.Lock()
	e.done, e.err = true, err
	e.notifyLocked()
	e.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		j.log().Debug("no early bytes from the origin; the first piece comes the usual way", "err", err)
	}
}

// complete returns the early bytes once all EarlyBytes arrived (nil when
// the fetch failed), waiting for the fetch to end.
func (e *earlyBytes) complete(ctx context.Context) []byte {
	for {
		e.mu.Lock()
		done, err, buf, ch := e.done, e.err, e.buf, e.changed
		e.mu.Unlock()
		if done {
			if err != nil || len(buf) != EarlyBytes {
				return nil
			}
			return buf
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
}

// received returns the early bytes received so far and a channel closed at
// the next change.
func (e *earlyBytes) received() ([]byte, bool, <-chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.buf, e.done, e.changed
}

// startEarly fetches the early bytes of a Prompt download that starts from
// nothing and may use the origin, in parallel with the layout resolution.
func (j *Job) startEarly(ctx context.Context) {
	if !j.req.Prompt || j.task != nil || !j.canUseSource() || len(j.req.Parents) > 0 {
		return
	}
	e := newEarly()
	j.early.Store(e)
	j.sessions.Go(func() { e.fetch(ctx, j) })
}

// writeEarly writes early bytes at [pos, pos+n) to w as they arrive, while
// piece 0 is not verified. It returns how many bytes it wrote; 0 with a nil
// error means the early bytes cannot serve pos (failed, or piece 0 is
// verified): the caller reads the store instead.
func (j *Job) writeEarly(ctx context.Context, w io.Writer, pos, n int64) (int64, error) {
	e := j.early.Load()
	limit := min(EarlyBytes, int64(j.layout.PieceLength))
	if e == nil || pos >= limit {
		return 0, nil
	}
	var written int64
	for written < n && pos+written < limit {
		task := j.readyTask()
		if task != nil && task.Has(0) {
			return written, nil
		}
		buf, done, changed := e.received()
		at := pos + written
		if int64(len(buf)) > at {
			chunk := buf[at:min(int64(len(buf)), pos+n, limit)]
			e.served.Store(true)
			c, err := w.Write(chunk)
			written += int64(c)
			if err != nil {
				return written, err
			}
			continue
		}
		if done {
			return written, nil
		}
		var taskChanged, ready <-chan struct{}
		if task != nil {
			taskChanged = task.Changed()
		} else {
			ready = j.ready
		}
		select {
		case <-changed:
		case <-taskChanged:
		case <-ready:
		case <-j.done:
			return written, nil
		case <-ctx.Done():
			return written, ctx.Err()
		}
	}
	return written, nil
}

// pieceWithEarly fetches piece 0 from the origin starting after the early
// bytes, and stores it with them as its head; ok is false when there are no
// complete early bytes to build on (the caller fetches the whole piece).
func (j *Job) pieceWithEarly(ctx context.Context) (d protocol.Digest, ok bool, err error) {
	e := j.early.Load()
	if e == nil {
		return d, false, nil
	}
	_, length, err := j.layout.Piece(0)
	if err != nil || int64(length) <= EarlyBytes {
		return d, false, nil
	}
	head := e.complete(ctx)
	if head == nil {
		return d, false, nil
	}
	body, err := j.d.origin.OpenRange(ctx, j.sourceReq(), EarlyBytes, int64(length)-EarlyBytes, j.validator)
	if err != nil {
		return d, true, err
	}
	defer body.Close()
	cr := &countingReader{r: ratelimit.NewReader(ctx, body, j.d.limit, j.taskLimiter())}
	d, err = j.task.WritePiece(ctx, 0, protocol.Digest{}, io.MultiReader(bytes.NewReader(head), cr))
	j.bytesSource.Add(cr.n)
	j.d.metrics.bytes.WithLabelValues("source").Add(float64(cr.n))
	return d, true, err
}

// checkEarly compares the early bytes a reader was given with the verified
// piece 0, before the download reports success.
func (j *Job) checkEarly() error {
	e := j.early.Load()
	if e == nil || !e.served.Load() {
		return nil
	}
	buf, _, _ := e.received()
	if _, length, err := j.layout.Piece(0); err == nil && int64(len(buf)) > int64(length) {
		buf = buf[:length]
	}
	if len(buf) == 0 {
		return nil
	}
	rd, _, err := j.task.Piece(0)
	if err != nil {
		return fmt.Errorf("check early bytes: %w", err)
	}
	stored := make([]byte, len(buf))
	if _, err := io.ReadFull(rd, stored); err != nil {
		return fmt.Errorf("check early bytes: %w", err)
	}
	if !bytes.Equal(stored, buf) {
		return errEarlyMismatch
	}
	return nil
}
