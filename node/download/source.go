package download

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/dragonfly-p2p/df/node/ratelimit"
	"github.com/dragonfly-p2p/df/node/source"
	"github.com/dragonfly-p2p/df/protocol"
)

// maxSourceFailures ends origin fetching after this many failures in a row.
const maxSourceFailures = 5

// sourceLoop fetches from the origin the pieces this node is responsible
// for, as byte ranges (falling back to one streamed body when the origin
// cannot serve ranges). It first waits a short gather window, so that peers
// starting the same download at the same moment find each other and share
// the origin's work.
func (j *Job) sourceLoop(ctx context.Context) {
	if !j.scheduled.Load() && j.needsGather() {
		j.gather(ctx)
	}
	if ctx.Err() != nil {
		return
	}
	errs := make(chan error, j.d.cfg.SourceConcurrency)
	for range j.d.cfg.SourceConcurrency {
		j.sessions.Go(func() { errs <- j.sourceWorker(ctx) })
	}
	for range j.d.cfg.SourceConcurrency {
		if err := <-errs; err != nil {
			j.fail(err)
		}
	}
}

// needsGather: only a download that starts from nothing and has no
// complete parent yet needs to wait for company.
func (j *Job) needsGather() bool {
	return j.plan.liveParents() == 0 || !j.plan.anyComplete()
}

func (j *Job) sourceWorker(ctx context.Context) error {
	failures := 0
	for {
		// Scheduled: the scheduler chose this node to go to the origin,
		// so it fetches whatever nobody connected holds.
		pol := sourcePolicy{stall: j.d.cfg.OwnerStall, all: j.scheduled.Load()}
		n, ok := j.plan.pickForSource(pol)
		if !ok {
			return nil
		}
		err := j.sourceRun(ctx, n, pol)
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, source.ErrChanged) {
			return fmt.Errorf("%w: %w", ErrOriginChanged, err)
		}
		if errors.Is(err, source.ErrRangeNotSupported) {
			j.wholeOnce.Do(func() { j.sourceWhole(ctx) })
			return nil
		}
		failures++
		j.log().Info("origin fetch failed", "piece", n, "failures", failures, "err", err)
		if failures >= maxSourceFailures {
			if j.plan.liveParents() > 0 {
				return nil // the parents may still deliver
			}
			return fmt.Errorf("origin: %w", err)
		}
		sleep(ctx, time.Duration(float64(200*time.Millisecond)*math.Pow(2, float64(failures)))+rand.N(100*time.Millisecond))
	}
}

// sourceRun fetches piece n (already claimed) from the origin and, on the
// same response, the pieces after it for as long as each is still this
// node's to fetch: one range over the run of pieces from n on that are
// this node's to fetch when it starts, read piece by piece, so that pieces
// complete one after another at the link's rate (peers waiting for them
// can start on the first at once) and no request round trip separates two
// pieces. The rest of the range is abandoned if the next piece was
// meanwhile verified, taken by another fetch or announced by a peer.
func (j *Job) sourceRun(ctx context.Context, n uint32, pol sourcePolicy) error {
	if n == 0 {
		start := time.Now()
		if d, ok, err := j.pieceWithEarly(ctx); ok {
			j.sourced(n, d, err, start)
			return err
		}
	}
	end := j.plan.sourceRunEnd(n, pol)
	off, _, err := j.layout.Piece(n)
	if err != nil {
		j.plan.finish(n, false, protocol.Digest{}, 0)
		return err
	}
	last, lastLen, err := j.layout.Piece(end - 1)
	if err != nil {
		j.plan.finish(n, false, protocol.Digest{}, 0)
		return err
	}
	start := time.Now()
	body, err := j.d.origin.OpenRange(ctx, j.sourceReq(), off, last+int64(lastLen)-off, j.validator)
	if err != nil {
		j.plan.finish(n, false, protocol.Digest{}, 0)
		return err
	}
	defer body.Close()
	for {
		_, length, err := j.layout.Piece(n)
		if err != nil {
			j.plan.finish(n, false, protocol.Digest{}, 0)
			return err
		}
		d, err := j.storeFromSource(ctx, n, io.LimitReader(body, int64(length)))
		j.sourced(n, d, err, start)
		if err != nil {
			return err
		}
		if n+1 >= end || !j.plan.claimForSource(n+1, pol) {
			return nil
		}
		n, start = n+1, time.Now()
	}
}

// sourced ends an origin fetch of piece n started at start.
func (j *Job) sourced(n uint32, d protocol.Digest, err error, start time.Time) {
	j.plan.finish(n, err == nil, d, time.Since(start))
	if err != nil {
		return
	}
	j.log().Debug("piece from the origin", "piece", n, "took", time.Since(start))
	j.fromOrigin(n)
	j.reportPiece(n, "", true, d, time.Since(start), false)
	j.notifyProgress()
}

// storeFromSource writes one piece read from the origin. The origin is the
// trusted source of a URL task's bytes, so the computed digest is accepted;
// a content task is checked against its digest when it completes.
func (j *Job) storeFromSource(ctx context.Context, n uint32, r io.Reader) (protocol.Digest, error) {
	cr := &countingReader{r: ratelimit.NewReader(ctx, r, j.d.limit, j.taskLimiter())}
	d, err := j.task.WritePiece(ctx, n, protocol.Digest{}, cr)
	j.bytesSource.Add(cr.n)
	j.d.metrics.bytes.WithLabelValues("source").Add(float64(cr.n))
	return d, err
}

// sourceWhole streams the origin's whole body when it cannot serve ranges.
// Only the peer owning the whole task among those fetching it does this.
func (j *Job) sourceWhole(ctx context.Context) {
	pol := sourcePolicy{stall: j.d.cfg.OwnerStall}
	if !j.plan.ownsWhole(pol, ctx) {
		return // another peer streams it; we get it from them
	}
	body, _, err := j.d.origin.Open(ctx, j.sourceReq())
	if err != nil {
		if j.plan.liveParents() == 0 {
			j.fail(fmt.Errorf("origin: %w", err))
		}
		return
	}
	defer body.Close()
	for n := range j.plan.count {
		_, length, _ := j.layout.Piece(n)
		if j.task.Has(n) {
			if _, err := io.CopyN(io.Discard, body, int64(length)); err != nil {
				j.fail(fmt.Errorf("origin: %w", err))
				return
			}
			continue
		}
		d, err := j.storeFromSource(ctx, n, io.LimitReader(body, int64(length)))
		if err != nil {
			if ctx.Err() == nil {
				j.fail(fmt.Errorf("origin: %w", err))
			}
			return
		}
		j.plan.markHave(n, d)
		j.fromOrigin(n)
		j.notifyProgress()
	}
}

// fromOrigin reports a piece fetched from the origin.
func (j *Job) fromOrigin(n uint32) {
	if j.d.fresh != nil {
		j.d.fresh.FromOrigin(j.req.ID, n)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
