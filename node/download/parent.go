package download

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/dragonfly-p2p/df/node/ratelimit"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/storage"
)

// Reasons a parent is dropped (metric labels).
const (
	dropUnreachable = "unreachable"
	dropNotFound    = "not_found"
	dropMismatch    = "layout_mismatch"
	dropStale       = "stale"
	dropLied        = "lied"
	dropFailures    = "failures"
	dropGone        = "gone"
	dropSlow        = "slow"
)

// A parent is slow when a piece from it took more than slowFactor times
// the download's median piece time (and at least slowMin); after
// slowStrikes such pieces in a row it is dropped, so that pieces only it
// holds become the scheduler's (or the origin's) problem instead of
// trickling in: a source host whose uplink collapsed held the swarm at
// its pace (testnet's slow-peer fault).
const (
	slowFactor  = 8
	slowMin     = 2 * time.Second
	slowStrikes = 2
)

// errBadParent marks a parent that sent something provably wrong: a piece
// whose bytes do not match, a piece it claimed to hold but does not, a
// contradicting digest.
var errBadParent = errors.New("parent misbehaved")

// maxParentFailures drops a parent after this many transfer failures.
const maxParentFailures = 3

// runParent follows one parent's pieces-sync stream and runs piece workers
// against it until the download ends or the parent is dropped.
func (j *Job) runParent(ctx context.Context, pi peer.AddrInfo, hs *handshake, streams int) {
	log := j.log().With("parent", pi.ID)
	if len(pi.Addrs) > 0 {
		j.d.host.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.TempAddrTTL)
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	s, err := j.d.host.NewStream(octx, pi.ID, protocol.PiecesSyncID)
	cancel()
	if err != nil {
		log.Debug("parent unreachable", "err", err)
		j.d.metrics.drops.WithLabelValues(dropUnreachable).Inc()
		return
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()

	r := bufio.NewReaderSize(s, 4096)
	hdr, err := j.openSync(s, r)
	if err != nil {
		log.Debug("parent has no usable copy", "err", err)
		j.d.metrics.drops.WithLabelValues(dropNotFound).Inc()
		return
	}
	// While the layout is unknown, offer this one; then wait for the verdict.
	select {
	case j.hdrs <- parentHeader{from: pi.ID, h: hdr}:
	case <-j.ready:
	case <-ctx.Done():
		return
	}
	select {
	case <-j.ready:
	case <-ctx.Done():
		return
	}
	if j.task == nil || hdr.Layout != j.layout {
		log.Info("parent's copy has another layout; ignoring it", "parent_layout", hdr.Layout, "layout", j.layout)
		j.d.metrics.drops.WithLabelValues(dropMismatch).Inc()
		return
	}
	if j.validator != "" && hdr.OriginValidator != "" && hdr.OriginValidator != j.validator {
		log.Info("parent holds an outdated copy of the origin's content; ignoring it")
		j.d.metrics.drops.WithLabelValues(dropStale).Inc()
		return
	}
	if !hdr.ContentDigest.IsZero() {
		if j.req.Kind == storage.KindContent && hdr.ContentDigest != protocol.Digest(j.req.ID) {
			// Not provably a lie: it may hold a named task under this ID.
			log.Info("parent holds other content under this task ID; ignoring it")
			j.d.metrics.drops.WithLabelValues(dropMismatch).Inc()
			return
		}
		if hdr.Complete {
			j.pmu.Lock()
			if j.parentDigest.IsZero() {
				j.parentDigest = hdr.ContentDigest
			}
			j.pmu.Unlock()
		}
	}

	ps := j.plan.addParent(pi.ID, hdr.Complete)
	defer j.plan.dropParent(ps)
	hs.done()
	workers := make(chan struct{}, streams)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	for range streams {
		j.sessions.Go(func() {
			j.pieceWorker(wctx, ps)
			workers <- struct{}{}
		})
	}
	if err := j.followSync(ps, r); err != nil {
		if errors.Is(err, errBadParent) {
			j.badParent(pi.ID, err)
		} else if ctx.Err() == nil {
			log.Debug("pieces-sync ended", "err", err)
			j.d.metrics.drops.WithLabelValues(dropGone).Inc()
		}
		return
	}
	// The parent holds everything: keep its workers until the job ends or
	// they give up on it.
	for range streams {
		select {
		case <-workers:
		case <-ctx.Done():
			return
		}
	}
}

// openSync sends the request and reads the header.
func (j *Job) openSync(s network.Stream, r *bufio.Reader) (protocol.SyncHeader, error) {
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	defer s.SetDeadline(time.Time{})
	if err := protocol.WriteMsg(s, &pb.SyncRequest{TaskId: j.req.ID.Multihash()}); err != nil {
		return protocol.SyncHeader{}, err
	}
	var m pb.SyncMessage
	if err := protocol.ReadMsg(r, &m, protocol.MaxSyncMessageSize); err != nil {
		return protocol.SyncHeader{}, err
	}
	h, ok := m.Body.(*pb.SyncMessage_Header)
	if !ok {
		return protocol.SyncHeader{}, fmt.Errorf("%w: first pieces-sync message is not a header", protocol.ErrBadMessage)
	}
	hdr, err := protocol.ParseSyncHeader(h.Header)
	if err != nil {
		return hdr, err
	}
	if hdr.Status != pb.Status_STATUS_OK {
		return hdr, fmt.Errorf("parent answered %v: %s", hdr.Status, hdr.Message)
	}
	return hdr, nil
}

// followSync applies the parent's piece announcements until it reports
// completion (nil) or something goes wrong.
func (j *Job) followSync(ps *parentState, r *bufio.Reader) error {
	count := j.layout.PieceCount()
	budget := 2*int64(count) + protocol.MaxSyncPieces // announcements we accept in total
	for {
		var m pb.SyncMessage
		if err := protocol.ReadMsg(r, &m, protocol.MaxSyncMessageSize); err != nil {
			if errors.Is(err, protocol.ErrBadFrame) || errors.Is(err, protocol.ErrFrameTooLarge) {
				return fmt.Errorf("%w: %w", errBadParent, err)
			}
			return err
		}
		switch b := m.Body.(type) {
		case *pb.SyncMessage_Pieces:
			pieces, err := protocol.ParsePieceSet(b.Pieces, count)
			if err != nil {
				return fmt.Errorf("%w: %w", errBadParent, err)
			}
			if budget -= int64(len(pieces)); budget < 0 {
				return fmt.Errorf("%w: endless piece announcements", errBadParent)
			}
			if j.plan.announce(ps, pieces) {
				return fmt.Errorf("%w: announced a digest that contradicts the trusted one", errBadParent)
			}
			if j.plan.isDropped(ps) {
				return errParentDropped
			}
		case *pb.SyncMessage_End:
			status, msg, err := protocol.ParseSyncEnd(b.End)
			if err != nil {
				return fmt.Errorf("%w: %w", errBadParent, err)
			}
			if status != pb.Status_STATUS_OK {
				return fmt.Errorf("parent stopped: %v %s", status, msg)
			}
			j.plan.setComplete(ps)
			return nil
		default:
			return fmt.Errorf("%w: unexpected pieces-sync message", errBadParent)
		}
	}
}

// badParent drops a parent that provably misbehaved and keeps it away from
// every download for a while.
func (j *Job) badParent(p peer.ID, err error) {
	j.log().Warn("dropping a parent that misbehaved", "parent", p, "err", err)
	j.d.metrics.drops.WithLabelValues(dropLied).Inc()
	j.d.bad.add(p)
	j.markDropped(p)
}

// markDropped remembers a parent given up on (the reschedule blocklist).
func (j *Job) markDropped(p peer.ID) {
	j.pmu.Lock()
	j.dropped[p] = true
	j.pmu.Unlock()
}

// pieceWorker fetches pieces from one parent over one stream.
func (j *Job) pieceWorker(ctx context.Context, ps *parentState) {
	var (
		s        network.Stream
		r        *bufio.Reader
		failures int
	)
	defer func() {
		if s != nil {
			_ = s.Close()
		}
	}()
	for {
		n, ok := j.plan.pickForParent(ps)
		if !ok {
			return
		}
		if s == nil {
			var err error
			octx, cancel := context.WithTimeout(ctx, 10*time.Second)
			s, err = j.d.host.NewStream(octx, ps.id, protocol.PieceID)
			cancel()
			if err != nil {
				j.plan.finish(n, false, protocol.Digest{}, 0)
				if failures++; failures >= maxParentFailures || ctx.Err() != nil {
					j.d.metrics.drops.WithLabelValues(dropFailures).Inc()
					j.markDropped(ps.id)
					j.plan.dropParent(ps)
					return
				}
				continue
			}
			r = bufio.NewReaderSize(s, 32<<10)
		}
		start := time.Now()
		d, waited, err := j.fetchPiece(ctx, s, r, n)
		took := time.Since(start) - waited // the parent's time, not the store's
		j.plan.finish(n, err == nil, d, took)
		if !errors.Is(err, errPieceDone) && !errors.Is(err, errBusy) && ctx.Err() == nil {
			// A busy parent is not reported: it says nothing about the
			// parent, and in a busy swarm the reports would crowd out the
			// piece results the scheduler chooses parents by.
			j.reportPiece(n, ps.id, err == nil, d, took, false)
		}
		switch {
		case err == nil:
			failures = 0
			j.log().Debug("piece from a parent", "piece", n, "parent", ps.id, "took", took, "waited_for_other_copy", waited)
			j.notifyProgress()
			if j.plan.slowPiece(ps, took) {
				j.log().Info("dropping a slow parent", "parent", ps.id, "piece_took", took)
				j.d.metrics.drops.WithLabelValues(dropSlow).Inc()
				j.markDropped(ps.id)
				j.plan.dropParent(ps)
				return
			}
		case errors.Is(err, errBusy):
			sleep(ctx, 100*time.Millisecond+rand.N(400*time.Millisecond))
		case errors.Is(err, errBadParent):
			j.badParent(ps.id, err)
			j.plan.dropParent(ps)
			_ = s.Reset()
			s = nil
			return
		default:
			_ = s.Reset()
			s = nil
			if errors.Is(err, errPieceDone) {
				continue // another parent delivered it first
			}
			j.log().Debug("piece transfer failed", "parent", ps.id, "piece", n, "err", err)
			if failures++; failures >= maxParentFailures {
				j.d.metrics.drops.WithLabelValues(dropFailures).Inc()
				j.markDropped(ps.id)
				j.plan.dropParent(ps)
				return
			}
		}
	}
}

var (
	// errParentDropped ends a pieces-sync stream whose parent a piece
	// worker dropped.
	errParentDropped = errors.New("parent dropped")
	errBusy          = errors.New("parent busy")
	errPieceDone     = errors.New("piece already verified")
)

// fetchPiece requests piece n and stores it verified. waited is how long
// the store held the piece back while another copy of it (a hedge from
// another parent) was being written.
func (j *Job) fetchPiece(ctx context.Context, s network.Stream, r *bufio.Reader, n uint32) (_ protocol.Digest, waited time.Duration, _ error) {
	if err := ctx.Err(); err != nil {
		return protocol.Digest{}, waited, err
	}
	off, length, err := j.layout.Piece(n)
	if err != nil {
		return protocol.Digest{}, waited, err
	}
	want := j.plan.trusted(n)
	_ = s.SetDeadline(time.Now().Add(j.d.cfg.PieceIdleTimeout))
	if err := protocol.WriteMsg(s, &pb.PieceRequest{TaskId: j.req.ID.Multihash(), Number: n}); err != nil {
		return protocol.Digest{}, waited, err
	}
	var m pb.PieceResponse
	if err := protocol.ReadMsg(r, &m, protocol.MaxPieceResponseSize); err != nil {
		if errors.Is(err, protocol.ErrBadFrame) || errors.Is(err, protocol.ErrFrameTooLarge) {
			return protocol.Digest{}, waited, fmt.Errorf("%w: %w", errBadParent, err)
		}
		return protocol.Digest{}, waited, err
	}
	h, err := protocol.ParsePieceResponse(&m)
	if err != nil {
		return protocol.Digest{}, waited, fmt.Errorf("%w: %w", errBadParent, err)
	}
	switch h.Status {
	case pb.Status_STATUS_OK:
	case pb.Status_STATUS_BUSY:
		return protocol.Digest{}, waited, errBusy
	case pb.Status_STATUS_NOT_FOUND:
		return protocol.Digest{}, waited, fmt.Errorf("%w: piece %d announced but not served", errBadParent, n)
	default:
		return protocol.Digest{}, waited, fmt.Errorf("parent answered %v: %s", h.Status, h.Message)
	}
	if h.Number != n || h.Offset != off || h.Length != length {
		return protocol.Digest{}, waited, fmt.Errorf("%w: piece header %d@%d+%d, want %d@%d+%d", errBadParent, h.Number, h.Offset, h.Length, n, off, length)
	}
	if !want.IsZero() && h.Digest != want {
		return protocol.Digest{}, waited, fmt.Errorf("%w: piece %d digest %s, trusted %s", errBadParent, n, h.Digest, want)
	}
	body := &pieceReader{
		r: ratelimit.NewReader(ctx, io.LimitReader(r, int64(length)), j.d.limit, j.taskLimiter()),
		s: s, idle: j.d.cfg.PieceIdleTimeout, task: j.task, n: n, count: &j.bytesPeers,
	}
	writeStart := time.Now()
	d, err := j.task.WritePiece(ctx, n, h.Digest, body)
	if !body.claimed.IsZero() {
		waited = body.claimed.Sub(writeStart)
	}
	if err == nil && body.read < int64(length) {
		// The piece was verified meanwhile (another parent or the origin)
		// and the store did not read this copy: the rest of it is still on
		// the stream, where it would be read as the next reply header and
		// an honest parent dropped as a liar. Drop the stream instead.
		return protocol.Digest{}, waited, errPieceDone
	}
	if body.err != nil && !errors.Is(body.err, io.EOF) {
		return protocol.Digest{}, waited, body.err // transport failure, not a lie
	}
	j.d.metrics.bytes.WithLabelValues("peer").Add(float64(body.read))
	switch {
	case err == nil:
		return d, waited, nil
	case errors.Is(err, storage.ErrDigestMismatch), errors.Is(err, storage.ErrPieceLength):
		if body.read < int64(length) {
			return protocol.Digest{}, waited, fmt.Errorf("parent closed the stream mid-piece: %w", io.ErrUnexpectedEOF)
		}
		return protocol.Digest{}, waited, fmt.Errorf("%w: %w", errBadParent, err)
	default:
		return protocol.Digest{}, waited, err
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
