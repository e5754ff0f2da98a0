package download

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/node/ratelimit"
	"github.com/dragonfly-p2p/df/node/source"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Job is one task's download, shared by every caller that asked for it.
type Job struct {
	d      *Downloader
	req    Request
	ctx    context.Context
	cancel context.CancelFunc
	start  time.Time

	refs int // guarded by d.mu

	ready chan struct{} // closed once the layout is known (Task usable) or the job failed
	// layoutKnown is closed once Layout is known, possibly before the task
	// exists in the store (Ready), or the job failed.
	layoutKnown chan struct{}
	layoutOnce  sync.Once
	done        chan struct{} // closed when the job ended
	err         error         // set before done closes

	task      storage.Task
	plan      *plan
	layout    protocol.Layout
	validator string // origin ETag/Last-Modified of this download
	meta      source.Meta

	hdrs     chan parentHeader // parent headers while the layout is unknown
	progress chan struct{}     // a piece was verified (non-blocking)
	fatal    chan error

	bytesPeers  atomic.Int64
	bytesSource atomic.Int64

	pmu            sync.Mutex
	parents        map[peer.ID]bool // sessions started
	parentDigest   protocol.Digest  // whole digest claimed by a complete parent (URL tasks)
	provided       bool
	sessions       sync.WaitGroup
	lastParentSeen time.Time
	activeParents  atomic.Int32 // parent sessions running
	handshaking    atomic.Int32 // parent sessions not yet registered in the plan
	found          *discoveryState

	piecesDone time.Duration // when the last piece was verified

	// Scheduler session (nil: DHT only).
	sess           SchedSession
	scheduled      atomic.Bool  // decisions come from a scheduler (else: DHT rules)
	lastDecision   atomic.Int64 // unix nanoseconds
	lastReschedule time.Time
	sourceAllowed  bool // pmu; the scheduler allowed the origin
	sourceOnce     sync.Once
	schedLayout    chan protocol.Layout
	dropped        map[peer.ID]bool // pmu; parents given up on

	failing    atomic.Bool                // execute returned an error; the job is ending
	early      atomic.Pointer[earlyBytes] // Prompt: the content's first bytes, fetched at once
	decided    chan struct{}              // closed at the scheduler's first decision
	decideOnce sync.Once
	sentAlone  atomic.Bool // that decision sent this node to the origin without parents

	wholeOnce sync.Once // the origin cannot serve ranges: stream it once
	limOnce   sync.Once
	lim       *ratelimit.Limiter
}

// Stats describe a finished or running job.
type Stats struct {
	BytesFromPeers  int64
	BytesFromSource int64
	Parents         int
	Duration        time.Duration
}

type parentHeader struct {
	from peer.ID
	h    protocol.SyncHeader
}

func newJob(d *Downloader, req Request, ctx context.Context, cancel context.CancelFunc) *Job {
	return &Job{
		d: d, req: req, ctx: ctx, cancel: cancel, start: time.Now(), refs: 1,
		ready: make(chan struct{}), done: make(chan struct{}), layoutKnown: make(chan struct{}),
		hdrs: make(chan parentHeader, 16), progress: make(chan struct{}, 1), fatal: make(chan error, 1),
		parents:     make(map[peer.ID]bool),
		schedLayout: make(chan protocol.Layout, 1),
		dropped:     make(map[peer.ID]bool),
		decided:     make(chan struct{}),
	}
}

// ID returns the task ID.
func (j *Job) ID() protocol.TaskID { return j.req.ID }

// Ready is closed when Task may be used (or the job failed: check Err).
func (j *Job) Ready() <-chan struct{} { return j.ready }

// LayoutKnown is closed as soon as Layout is known — before Ready when the
// task is still being created in the store — or when the job failed. A
// caller may send headers then; WriteTo waits for what it needs.
func (j *Job) LayoutKnown() <-chan struct{} { return j.layoutKnown }

// markLayout closes LayoutKnown; j.layout must be set.
func (j *Job) markLayout() { j.layoutOnce.Do(func() { close(j.layoutKnown) }) }

// readyTask returns the store handle once Ready closed, else nil.
func (j *Job) readyTask() storage.Task {
	select {
	case <-j.ready:
		return j.task
	default:
		return nil
	}
}

// Done is closed when the job ended.
func (j *Job) Done() <-chan struct{} { return j.done }

// Err is the job's result once Done is closed (nil: the task is complete
// and verified).
func (j *Job) Err() error {
	select {
	case <-j.done:
		return j.err
	default:
		return nil
	}
}

// Wait blocks until the job ends or ctx is done.
func (j *Job) Wait(ctx context.Context) error {
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Task is the store handle, valid after Ready closed without error.
func (j *Job) Task() storage.Task { return j.task }

// Layout is the task layout, valid after Ready.
func (j *Job) Layout() protocol.Layout { return j.layout }

// SetCursor tells the job a reader is waiting for piece n: pieces from n on
// are fetched first.
func (j *Job) SetCursor(n uint32) {
	if p := j.plan; p != nil {
		p.setCursor(n)
	}
}

// Stats returns transfer statistics.
func (j *Job) Stats() Stats {
	j.pmu.Lock()
	parents := len(j.parents)
	j.pmu.Unlock()
	return Stats{
		BytesFromPeers:  j.bytesPeers.Load(),
		BytesFromSource: j.bytesSource.Load(),
		Parents:         parents,
		Duration:        time.Since(j.start),
	}
}

// Release detaches a caller. When the last caller leaves an unfinished job,
// the job is cancelled.
func (j *Job) Release() {
	j.d.mu.Lock()
	j.refs--
	last := j.refs == 0
	j.d.mu.Unlock()
	if !last {
		return
	}
	go func() {
		j.cancel()
		<-j.done
		if j.task != nil {
			j.task.Close()
		}
	}()
}

// Test hooks (nil outside tests): testHookFailing runs once a job's
// execute failed and before its cleanup; testHookStartWaits when Start
// waits for such a job to end.
var testHookFailing, testHookStartWaits func()

func (j *Job) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

func (j *Job) log() *slog.Logger { return j.d.log.With("task", j.req.ID.Short()) }

// run is the job's goroutine.
func (j *Job) run() {
	err := j.execute()
	if err != nil {
		j.failing.Store(true) // Start no longer joins it
		if testHookFailing != nil {
			testHookFailing()
		}
	}
	j.cancel() // stops parent sessions and source workers
	if j.plan != nil {
		// Wakes workers blocked on the plan (a source worker waiting for a
		// piece to fetch does not watch the context): without it a
		// cancelled job could wait for them forever.
		j.plan.close()
	}
	j.sessions.Wait()
	if j.sess != nil {
		var digest protocol.Digest
		if err == nil && j.task != nil {
			digest = j.task.Info().ContentDigest
		}
		j.sess.Close(err, j.Stats(), digest)
	}
	if err != nil {
		j.pmu.Lock()
		provided := j.provided
		j.pmu.Unlock()
		if provided {
			j.d.announce.Withdraw(j.req.ID)
		}
		if j.task != nil && errors.Is(err, ErrOriginChanged) {
			_ = j.d.store.Delete(context.Background(), j.req.ID)
		}
		j.d.metrics.jobs.WithLabelValues(resultLabel(err)).Inc()
		j.log().Info("download failed", "err", err, "took", time.Since(j.start))
	} else {
		j.d.metrics.jobs.WithLabelValues("ok").Inc()
		st := j.Stats()
		j.log().Info("download complete", "bytes_from_peers", st.BytesFromPeers,
			"bytes_from_source", st.BytesFromSource, "parents", st.Parents, "took", st.Duration,
			"pieces_took", j.piecesDone)
	}
	j.err = err
	j.markLayout()
	select {
	case <-j.ready:
	default:
		close(j.ready)
	}
	close(j.done)
	j.d.forget(j)
}

func resultLabel(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, ErrNoSource):
		return "not_found"
	default:
		return "failed"
	}
}

func (j *Job) execute() error {
	ctx := j.ctx
	task, err := j.d.store.Open(ctx, j.req.ID)
	switch {
	case err == nil:
		if task.Info().Complete {
			if fresh, err := j.revalidate(ctx, task); err != nil || fresh {
				j.task = task
				j.layout = task.Info().Layout
				j.markLayout()
				close(j.ready)
				return err
			}
			task.Close()
			if err := j.d.store.Delete(ctx, j.req.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("drop stale copy: %w", err)
			}
		} else {
			j.task = task
			j.layout = task.Info().Layout
			j.validator = validatorOf(task.Info().Origin)
		}
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("open task: %w", err)
	}

	found := &discoveryState{}
	j.found = found
	for _, pi := range j.req.Parents {
		j.addParent(ctx, pi)
	}
	if !j.openScheduler(ctx) {
		j.lookup(ctx, found)
	}
	j.startEarly(ctx)
	if j.task == nil {
		if err := j.resolveLayout(ctx, found); err != nil {
			return err
		}
	} else if j.req.Source != nil && j.d.origin != nil && j.validator == "" {
		// Resuming: learn the origin's validator for If-Range.
		if meta, err := j.d.origin.Stat(ctx, j.sourceReq()); err == nil {
			j.meta, j.validator = meta, validatorOf(storage.Origin{ETag: meta.ETag, LastModified: meta.LastModified})
		}
	}
	if j.sess != nil {
		j.sess.UpdateLayout(j.layout)
	}
	p := newPlan(j.req.ID, j.d.host.ID(), j.layout, j.d.cfg.StreamWindow)
	for cursor := 0; ; {
		var pieces []protocol.PieceInfo
		if pieces, cursor = j.task.Pieces(cursor); len(pieces) == 0 {
			break
		}
		for _, pi := range pieces {
			p.markHave(pi.Number, pi.Digest)
		}
	}
	j.pmu.Lock()
	j.plan = p
	useSource := j.sourceAllowed || !j.scheduled.Load()
	j.pmu.Unlock()
	j.markLayout()
	close(j.ready)
	j.markProvided()
	if useSource {
		j.startSource(ctx)
	}
	if err := j.waitPieces(ctx, found); err != nil {
		return err
	}
	j.piecesDone = time.Since(j.start)
	return j.complete(ctx)
}

// markProvided provides the task once its layout is known: from then on
// this node can answer pieces-sync for it, which is what lets peers that
// start at the same moment find each other.
func (j *Job) markProvided() {
	j.pmu.Lock()
	j.provided = true
	j.pmu.Unlock()
	j.d.announce.Provide(j.req.ID)
}

func (j *Job) canUseSource() bool {
	return j.req.Source != nil && j.d.origin != nil && !j.req.NoBackSource
}

func (j *Job) sourceReq() source.Request {
	return source.Request{URL: j.req.Source.URL, Header: j.req.Source.Header}
}

// revalidate checks a complete URL task against its origin: true when the
// copy is still fresh (or cannot be checked).
func (j *Job) revalidate(ctx context.Context, task storage.Task) (bool, error) {
	info := task.Info()
	if info.Kind != storage.KindURL || j.req.Source == nil || j.d.origin == nil ||
		(info.Origin.ETag == "" && info.Origin.LastModified == "") {
		return true, nil
	}
	same, _, err := j.d.origin.Revalidate(ctx, j.sourceReq(), info.Origin.ETag, info.Origin.LastModified)
	if err != nil {
		j.log().Warn("cannot revalidate the cached copy with its origin; serving it", "err", err)
		return true, nil
	}
	if !same {
		j.log().Info("origin content changed since it was cached; downloading it again")
	}
	return same, nil
}

// discovery state shared with waitPieces.
type discoveryState struct {
	mu       sync.Mutex
	searches int           // lookups under way
	lastDone time.Time     // when the last lookup ended
	found    int           // providers seen in total
	changed  chan struct{} // closed at the next change (nil: nobody waits)
}

// changes returns a channel closed at the state's next change.
func (s *discoveryState) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

func (s *discoveryState) notifyLocked() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

func (s *discoveryState) idle() (bool, int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.searches == 0, s.found, s.lastDone
}

func (j *Job) lookup(ctx context.Context, st *discoveryState) {
	if j.d.finder == nil {
		return
	}
	st.mu.Lock()
	st.searches++
	st.mu.Unlock()
	j.sessions.Go(func() {
		fctx, cancel := context.WithTimeout(ctx, j.d.cfg.FindTimeout)
		defer cancel()
		for pi := range j.d.finder.FindProviders(fctx, j.req.ID, j.d.cfg.MaxParents) {
			if j.addParent(ctx, pi) {
				st.mu.Lock()
				st.found++
				st.notifyLocked()
				st.mu.Unlock()
			}
		}
		st.mu.Lock()
		st.searches--
		st.lastDone = time.Now()
		st.notifyLocked()
		st.mu.Unlock()
	})
}

// addParent starts a session with pi unless one exists, pi is this node,
// known bad, or the parent limit is reached.
func (j *Job) addParent(ctx context.Context, pi peer.AddrInfo) bool {
	return j.addParentStreams(ctx, pi, j.d.cfg.StreamsPerParent)
}

// addParentStreams is addParent with a number of piece streams (the
// scheduler's weight for this parent).
func (j *Job) addParentStreams(ctx context.Context, pi peer.AddrInfo, streams int) bool {
	if pi.ID == j.d.host.ID() || j.d.bad.isBad(pi.ID) {
		return false
	}
	j.pmu.Lock()
	if j.parents[pi.ID] || len(j.parents) >= j.d.cfg.MaxParents {
		j.pmu.Unlock()
		return false
	}
	j.parents[pi.ID] = true
	j.lastParentSeen = time.Now()
	j.pmu.Unlock()
	j.activeParents.Add(1)
	j.handshaking.Add(1)
	j.sessions.Go(func() {
		defer j.activeParents.Add(-1)
		hs := &handshake{j: j}
		defer hs.done()
		j.runParent(ctx, pi, hs, streams)
	})
	return true
}

// resolveLayout learns the content size from the origin and/or the first
// parents, then creates the task in the store.
func (j *Job) resolveLayout(ctx context.Context, found *discoveryState) error {
	type statResult struct {
		meta source.Meta
		err  error
	}
	var statCh chan statResult
	if j.req.Source != nil && j.d.origin != nil {
		statCh = make(chan statResult, 1)
		go func() {
			m, err := j.d.origin.Stat(ctx, j.sourceReq())
			statCh <- statResult{m, err}
		}()
	}
	var (
		srcLayout *protocol.Layout
		srcErr    error
		peerHdr   *parentHeader
		tick      = time.NewTicker(100 * time.Millisecond)
	)
	defer tick.Stop()
	for {
		// Decide as soon as the information is enough.
		switch {
		case srcLayout != nil && (j.req.Kind != storage.KindContent || peerHdr == nil):
			if peerHdr != nil && peerHdr.h.Layout.ContentLength != srcLayout.ContentLength {
				j.log().Warn("a peer's copy differs in size from the origin's; ignoring the peer", "peer", peerHdr.from)
			}
			return j.createTask(ctx, *srcLayout)
		case peerHdr != nil && (j.req.Kind == storage.KindContent || statCh == nil):
			return j.createTask(ctx, peerHdr.h.Layout)
		case peerHdr != nil && srcErr != nil:
			// Origin unreachable: trust the cluster's copy.
			if j.req.PieceLength != 0 && peerHdr.h.Layout.PieceLength != j.req.PieceLength {
				return fmt.Errorf("%w: piece length %d, want %d", ErrLayoutConflict, peerHdr.h.Layout.PieceLength, j.req.PieceLength)
			}
			return j.createTask(ctx, peerHdr.h.Layout)
		case j.scheduled.Load():
			// The scheduler decides when nobody has the task.
		case srcErr != nil && statCh == nil:
			if idle, _, _ := found.idle(); idle && j.noParentsLeft() {
				return fmt.Errorf("%w (origin: %w)", ErrNoSource, srcErr)
			}
		case statCh == nil && srcErr == nil:
			// Peers only: keep looking for a provider until FindTimeout (a
			// record may still be on its way), then give up.
			if idle, _, last := found.idle(); idle && j.noParentsLeft() {
				if time.Since(j.start) > j.d.cfg.FindTimeout {
					return fmt.Errorf("%w: no peer provides task %s", ErrNoSource, j.req.ID)
				}
				if time.Since(last) > 500*time.Millisecond {
					j.lookup(ctx, found)
				}
			}
		}
		select {
		case r := <-statCh:
			statCh = nil
			if r.err != nil {
				srcErr = r.err
				j.log().Info("origin stat failed", "err", r.err)
				continue
			}
			if r.meta.ContentLength < 0 {
				srcErr = fmt.Errorf("origin did not send Content-Length; P2P distribution needs the size up front")
				continue
			}
			l, err := protocol.NewLayout(r.meta.ContentLength, j.req.PieceLength)
			if err != nil {
				return fmt.Errorf("origin content: %w", err)
			}
			j.meta = r.meta
			j.validator = validatorOf(storage.Origin{ETag: r.meta.ETag, LastModified: r.meta.LastModified})
			srcLayout = &l
		case h := <-j.hdrs:
			if peerHdr == nil && j.acceptableLayout(h.h.Layout) {
				peerHdr = &h
			}
		case l := <-j.schedLayout:
			// The scheduler's layout is as good as a trusted parent's.
			if peerHdr == nil && (l.ContentLength == 0 || j.acceptableLayout(l)) {
				peerHdr = &parentHeader{h: protocol.SyncHeader{Layout: l}}
			}
		case err := <-j.fatal:
			return err
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// noParentsLeft: every parent session started so far has ended.
func (j *Job) noParentsLeft() bool {
	return len(j.hdrs) == 0 && j.activeParents.Load() == 0
}

// acceptableLayout: a URL task's piece length follows from its ID.
func (j *Job) acceptableLayout(l protocol.Layout) bool {
	if j.req.Kind == storage.KindContent {
		return true
	}
	want := j.req.PieceLength
	if want == 0 {
		want = protocol.AutoPieceLength(l.ContentLength)
	}
	return l.PieceLength == want
}

func (j *Job) createTask(ctx context.Context, l protocol.Layout) error {
	spec := storage.Spec{ID: j.req.ID, Kind: j.req.Kind, Layout: l}
	if j.req.Kind == storage.KindContent {
		spec.ContentDigest = protocol.Digest(j.req.ID)
	}
	if j.req.Source != nil {
		spec.Origin = storage.Origin{URL: redactedURL(j.req.Source.URL), ETag: j.meta.ETag, LastModified: j.meta.LastModified}
	}
	// Readers may start now (headers, early bytes) while the store
	// creates the task; the store normalises the layout the same way.
	l, err := protocol.NewLayout(l.ContentLength, l.PieceLength)
	if err != nil {
		return fmt.Errorf("create task: %w", err)
	}
	j.layout = l
	j.markLayout()
	t, err := j.d.store.Create(ctx, spec)
	if err != nil {
		return fmt.Errorf("create task: %w", err)
	}
	if got := t.Info().Layout; got != l {
		t.Close()
		return fmt.Errorf("%w: stored as %d/%d, expected %d/%d", ErrLayoutConflict, got.ContentLength, got.PieceLength, l.ContentLength, l.PieceLength)
	}
	j.task = t
	return nil
}

// waitPieces waits until every piece is verified, the job fails, or nobody
// can supply the missing pieces any more.
func (j *Job) waitPieces(ctx context.Context, found *discoveryState) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	lastLookup := time.Now()
	for !j.plan.done() {
		select {
		case <-j.progress:
		case err := <-j.fatal:
			return err
		case <-tick.C:
			j.plan.wakeAll() // lets source workers take over stalled owners
			j.maybeReschedule()
			if j.scheduled.Load() {
				continue // the scheduler finds parents and decides failures
			}
			if j.plan.liveParents() < j.d.cfg.MaxParents && time.Since(lastLookup) > 3*time.Second {
				lastLookup = time.Now()
				if idle, _, _ := found.idle(); idle {
					j.lookup(ctx, found)
				}
			}
			if !j.canUseSource() && j.plan.liveParents() == 0 {
				j.pmu.Lock()
				since := time.Since(j.lastParentSeen)
				j.pmu.Unlock()
				if idle, _, _ := found.idle(); idle && since > j.d.cfg.FindTimeout {
					return fmt.Errorf("%w: all parents of task %s are gone", ErrNoSource, j.req.ID)
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (j *Job) complete(ctx context.Context) error {
	var want protocol.Digest
	switch j.req.Kind {
	case storage.KindContent:
		want = protocol.Digest(j.req.ID)
	default:
		j.pmu.Lock()
		want = j.parentDigest
		j.pmu.Unlock()
	}
	if err := j.checkEarly(); err != nil {
		return err
	}
	if _, err := j.task.Complete(ctx, want); err != nil {
		return fmt.Errorf("complete task: %w", err)
	}
	return nil
}

// handshake marks the end of a parent session's handshake (once).
type handshake struct {
	j    *Job
	once sync.Once
}

func (h *handshake) done() { h.once.Do(func() { h.j.handshaking.Add(-1) }) }

// gather runs before this node's first origin fetch: it waits (up to 2 s)
// for this node's provider record to be stored, then the gather window,
// looks up providers once more and waits (up to 2 s) for the lookup and for
// new parents' handshakes, so that peers starting the same download at the
// same moment know each other before any of them goes to the origin. The
// record comes first so that the window counts from it: a slow DHT (a busy
// host, many tasks announced at once) delays the lookup instead of hiding
// the peers from each other.
func (j *Job) gather(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := j.d.announce.WaitProvided(pctx, j.req.ID)
	cancel()
	if err != nil && ctx.Err() == nil {
		j.log().Debug("going on before this node's provider record was stored", "err", err)
	}
	sleep(ctx, j.d.cfg.GatherWindow)
	if ctx.Err() != nil || j.found == nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if idle, _, _ := j.found.idle(); idle {
		j.lookup(ctx, j.found)
	}
	waitUntil(wctx, func() bool {
		idle, _, _ := j.found.idle()
		return idle && j.handshaking.Load() == 0
	})
	_, found, _ := j.found.idle()
	j.log().Debug("gathered peers before going to the origin", "providers_found", found, "parents", j.plan.liveParents())
}

// waitUntil polls cond until it holds or ctx ends.
func waitUntil(ctx context.Context, cond func() bool) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (j *Job) notifyProgress() {
	select {
	case j.progress <- struct{}{}:
	default:
	}
}

func (j *Job) fail(err error) {
	select {
	case j.fatal <- err:
	default:
	}
}

func validatorOf(o storage.Origin) string {
	if o.ETag != "" {
		return o.ETag
	}
	return o.LastModified
}
