package download

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Scheduler opens a download's session with the task's scheduler. Open
// fails when no scheduler is reachable; the download then finds parents
// through the DHT alone.
type Scheduler interface {
	Open(ctx context.Context, req SchedRequest) (SchedSession, error)
}

// SchedRequest registers a download with its scheduler.
type SchedRequest struct {
	ID     protocol.TaskID
	Kind   storage.Kind
	URL    string
	Layout *protocol.Layout // nil while unknown
	// PieceLength is the fixed piece length asked for (0: automatic rule);
	// URL task IDs include it, so seeds must use the same.
	PieceLength uint32
	Priority    int
	Tag         string
	Application string
	// BackToSource: this node must fetch from the origin (a triggered seed).
	BackToSource bool
	// Held reports the verified pieces (for re-registration after a
	// scheduler failover).
	Held func() []bool
}

// SchedSession is one download's conversation with its scheduler.
type SchedSession interface {
	// Decisions delivers the scheduler's decisions; closed when the session ends.
	Decisions() <-chan Decision
	// UpdateLayout tells the scheduler the layout once it is known.
	UpdateLayout(l protocol.Layout)
	PieceDone(n uint32, parent peer.ID, cost time.Duration, d protocol.Digest)
	PieceFailed(n uint32, parent peer.ID, temporary bool)
	// Reschedule asks for other parents.
	Reschedule(blocklist []peer.ID, reason string)
	// Close ends the session, telling the scheduler how it went.
	Close(err error, st Stats, digest protocol.Digest)
}

// Decision is one scheduler decision.
type Decision struct {
	Parents       []protocol.Candidate
	Layout        *protocol.Layout
	ContentDigest protocol.Digest
	// BackToSource allows this node to fetch from the origin.
	BackToSource bool
	// Empty: the task has no content.
	Empty bool
	// Fallback: every scheduler is unreachable; use the DHT.
	Fallback bool
	// Err: the scheduler refused the download (priority, limits, nobody
	// has it): the download fails with it.
	Err error
}

// openScheduler starts a scheduler session for the job (false: none, the
// DHT is used).
func (j *Job) openScheduler(ctx context.Context) bool {
	if j.d.sched == nil {
		return false
	}
	req := SchedRequest{
		ID: j.req.ID, Kind: j.req.Kind, PieceLength: j.req.PieceLength, Priority: j.req.Priority, Tag: j.req.Tag,
		Application: j.req.Application, BackToSource: j.req.SeedTriggered, Held: j.heldBitmap,
	}
	if j.req.Source != nil {
		req.URL = j.req.Source.URL
	}
	if j.task != nil {
		l := j.layout
		req.Layout = &l
	}
	sess, err := j.d.sched.Open(ctx, req)
	if err != nil {
		j.log().Info("no scheduler reachable; finding parents through the DHT", "err", err)
		j.d.metrics.schedFallbacks.Inc()
		return false
	}
	j.sess = sess
	j.scheduled.Store(true)
	j.sessions.Go(func() { j.followScheduler(ctx, sess) })
	return true
}

// followScheduler applies the scheduler's decisions.
func (j *Job) followScheduler(ctx context.Context, sess SchedSession) {
	for {
		var d Decision
		var ok bool
		select {
		case d, ok = <-sess.Decisions():
			if !ok {
				return
			}
		case <-ctx.Done():
			return
		}
		j.lastDecision.Store(time.Now().UnixNano())
		j.noteDecision(d)
		switch {
		case d.Err != nil:
			j.fail(d.Err)
			return
		case d.Fallback:
			j.fallbackToDHT(ctx)
			return
		case d.Empty:
			j.offerLayout(protocol.Layout{PieceLength: protocol.MinAutoPieceLength})
			continue
		}
		if d.Layout != nil {
			j.offerLayout(*d.Layout)
		}
		if !d.ContentDigest.IsZero() {
			j.pmu.Lock()
			if j.parentDigest.IsZero() {
				j.parentDigest = d.ContentDigest
			}
			j.pmu.Unlock()
		}
		if d.BackToSource {
			j.allowSource(ctx)
		}
		if len(d.Parents) > 0 || d.BackToSource {
			ids := make([]peer.ID, len(d.Parents))
			for i, c := range d.Parents {
				ids[i] = c.Peer.ID
			}
			j.log().Debug("scheduler decision", "parents", ids, "back_to_source", d.BackToSource)
		}
		var maxW uint32
		for _, c := range d.Parents {
			maxW = max(maxW, c.Weight)
		}
		for _, c := range d.Parents {
			streams := j.d.cfg.StreamsPerParent
			if maxW > 0 {
				streams = max(1, int(c.Weight)*j.d.cfg.StreamsPerParent/int(maxW))
			}
			j.addParentStreams(ctx, c.Peer, streams)
		}
	}
}

// offerLayout hands resolveLayout the scheduler's layout.
func (j *Job) offerLayout(l protocol.Layout) {
	select {
	case j.schedLayout <- l:
	default:
	}
}

// fallbackToDHT switches a scheduled download to DHT discovery and the
// DHT's origin rules.
func (j *Job) fallbackToDHT(ctx context.Context) {
	j.log().Warn("lost every scheduler; continuing through the DHT")
	j.d.metrics.schedFallbacks.Inc()
	j.scheduled.Store(false)
	j.lookup(ctx, j.found)
	j.allowSource(ctx)
}

// allowSource lets the job fetch from the origin (now, or as soon as the
// layout is known).
func (j *Job) allowSource(ctx context.Context) {
	j.pmu.Lock()
	j.sourceAllowed = true
	ready := j.plan != nil
	j.pmu.Unlock()
	if ready {
		j.startSource(ctx)
	}
}

// startSource starts the origin workers once, if the job may use the origin.
func (j *Job) startSource(ctx context.Context) {
	if !j.canUseSource() {
		return
	}
	j.sourceOnce.Do(func() { j.sessions.Go(func() { j.sourceLoop(ctx) }) })
}

// heldBitmap reports the verified pieces.
func (j *Job) heldBitmap() []bool {
	if j.plan == nil {
		return nil
	}
	return j.plan.held()
}

// strandedAfter: a scheduled download whose parents hold none of some
// missing pieces and that verified nothing for this long asks again.
const strandedAfter = 5 * time.Second

// maybeReschedule asks the scheduler for other parents when a scheduled
// download that may not go to the origin has no parent left, or has
// parents that lack pieces it still needs and has stopped progressing (the
// only holder was dropped as slow or failing while other parents remain:
// without asking, it would wait for them forever).
func (j *Job) maybeReschedule() {
	if !j.scheduled.Load() || j.sess == nil || j.plan == nil {
		return
	}
	j.pmu.Lock()
	allowed := j.sourceAllowed
	j.pmu.Unlock()
	if allowed || (j.plan.liveParents() > 0 && !j.plan.stranded(strandedAfter)) {
		return
	}
	last := time.Unix(0, j.lastDecision.Load())
	if time.Since(last) < 3*time.Second || time.Since(j.lastReschedule) < 3*time.Second {
		return
	}
	j.lastReschedule = time.Now()
	j.sess.Reschedule(j.droppedParents(), "no parent holds the missing pieces")
}

func (j *Job) droppedParents() []peer.ID {
	j.pmu.Lock()
	defer j.pmu.Unlock()
	out := make([]peer.ID, 0, len(j.dropped))
	for p := range j.dropped {
		out = append(out, p)
		if len(out) == protocol.MaxBlocklist {
			break
		}
	}
	return out
}

// reportPiece tells the scheduler about a piece transfer.
func (j *Job) reportPiece(n uint32, parent peer.ID, ok bool, d protocol.Digest, took time.Duration, temporary bool) {
	if j.sess == nil || !j.scheduled.Load() {
		return
	}
	if ok {
		j.sess.PieceDone(n, parent, took, d)
	} else {
		j.sess.PieceFailed(n, parent, temporary)
	}
}
