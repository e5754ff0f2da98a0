// Package download is the node's download conductor. For one task it finds
// parents (peers that provide the task, or parents suggested by a
// scheduler), follows each parent's pieces-sync stream, pulls different
// pieces from several parents at once, verifies every piece before it is
// stored, drops a parent that lies or stalls and carries on elsewhere, and
// goes back to the origin only for pieces nobody has. Simultaneous
// downloads of one URL split the origin fetches between them by rendezvous
// hashing, so the origin serves each piece about once.
//
// Downloads of one task are single-flighted: every caller attaches to the
// same Job, and can stream the content in order while it arrives.
package download

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dragonfly-p2p/df/node/ratelimit"
	"github.com/dragonfly-p2p/df/node/source"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Errors.
var (
	// ErrNoSource: no peer holds the task and it has no origin to fall back to.
	ErrNoSource = errors.New("no peer has the task and it has no source")
	// ErrLayoutConflict: the origin and the peers disagree on the content size.
	ErrLayoutConflict = errors.New("peers and origin disagree on the task layout")
	// ErrOriginChanged: the origin's content changed during the download.
	ErrOriginChanged = errors.New("origin content changed during download")
)

// Store is the part of storage.Store the downloader uses.
type Store interface {
	Create(ctx context.Context, spec storage.Spec) (storage.Task, error)
	Open(ctx context.Context, id protocol.TaskID) (storage.Task, error)
	Delete(ctx context.Context, id protocol.TaskID) error
}

// Finder finds peers that provide a task.
type Finder interface {
	FindProviders(ctx context.Context, id protocol.TaskID, limit int) <-chan peer.AddrInfo
}

// Announcer provides and withdraws tasks.
type Announcer interface {
	// Provide starts providing id without waiting; WaitProvided waits
	// (until ctx ends) for that first announcement to be stored.
	Provide(id protocol.TaskID)
	WaitProvided(ctx context.Context, id protocol.TaskID) error
	Withdraw(ids ...protocol.TaskID)
}

// Origin is the part of the source client the downloader uses.
type Origin interface {
	Stat(ctx context.Context, req source.Request) (source.Meta, error)
	OpenRange(ctx context.Context, req source.Request, off, n int64, ifRange string) (io.ReadCloser, error)
	Open(ctx context.Context, req source.Request) (io.ReadCloser, source.Meta, error)
	Revalidate(ctx context.Context, req source.Request, etag, lastModified string) (bool, source.Meta, error)
}

// OriginPieces is told about every piece this node fetched from the origin
// (the upload service announces such pieces to one child first).
type OriginPieces interface {
	FromOrigin(id protocol.TaskID, n uint32)
}

// SourceRequest is a task's origin.
type SourceRequest struct {
	URL    string
	Header http.Header
}

// Request describes a download.
type Request struct {
	ID   protocol.TaskID
	Kind storage.Kind
	// PieceLength is the task's fixed piece length (0: automatic rule).
	PieceLength uint32
	// Source is the origin; nil means peers only.
	Source *SourceRequest
	// Parents are suggested parents (from a scheduler), tried with the
	// DHT's providers.
	Parents []peer.AddrInfo
	// RateLimit caps this task's download rate in bytes/s (0: host limit only).
	RateLimit int64
	// NoBackSource forbids the origin even when nobody else has a piece.
	NoBackSource bool
	// Priority is Dragonfly's LEVEL0–6 (0: unset), Tag and Application
	// are passed to the scheduler.
	Priority         int
	Tag, Application string
	// SeedTriggered: a scheduler asked this (seed) node to fetch the task
	// from its origin.
	SeedTriggered bool
	// Prompt: a client is waiting for the first bytes (the registry
	// mirror's blobs). A download that starts from nothing, may go to the
	// origin and whose provider lookup finds nobody fetches the first
	// EarlyBytes from it at once, without waiting for the gather window,
	// and streams them to readers as they arrive (see WriteTo).
	Prompt bool
}

// Config tunes the downloader.
type Config struct {
	// MaxParents bounds parents per task (default 16).
	MaxParents int
	// StreamsPerParent is how many piece streams run to one parent (default 3).
	StreamsPerParent int
	// SourceConcurrency is how many origin ranges run at once (default 1:
	// one range streams the pieces this node fetches one after another at
	// the link's rate, so peers can start on the first at once; several
	// ranges in parallel split the link and finish their pieces together,
	// which helps only an origin that limits each connection's rate).
	SourceConcurrency int
	// GatherWindow is how long a download that must go to the origin first
	// waits for other peers starting the same download (default 300 ms).
	GatherWindow time.Duration
	// FindTimeout bounds the provider lookup deciding that nobody has a
	// task without a source (default 10 s).
	FindTimeout time.Duration
	// PieceIdleTimeout fails a piece transfer that makes no progress for
	// this long (default 15 s).
	PieceIdleTimeout time.Duration
	// OwnerStall is how long an origin-fetching peer may go without
	// announcing a piece before this node takes its pieces over (default 10 s).
	OwnerStall time.Duration
	// StreamWindow is how many pieces ahead of a streaming reader are
	// fetched first (default 8).
	StreamWindow uint32
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxParents, 16)
	def(&c.StreamsPerParent, 3)
	def(&c.SourceConcurrency, 1)
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defd(&c.GatherWindow, 300*time.Millisecond)
	defd(&c.FindTimeout, 10*time.Second)
	defd(&c.PieceIdleTimeout, 15*time.Second)
	defd(&c.OwnerStall, 10*time.Second)
	if c.StreamWindow == 0 {
		c.StreamWindow = 8
	}
}

// Downloader runs downloads.
type Downloader struct {
	host     host.Host
	store    Store
	finder   Finder
	announce Announcer
	origin   Origin
	cfg      Config
	log      *slog.Logger
	limit    *ratelimit.Limiter
	metrics  *metrics
	bad      *badPeers
	sched    Scheduler
	fresh    OriginPieces

	mu   sync.Mutex
	jobs map[protocol.TaskID]*Job
	ctx  context.Context // the downloader's lifetime (set by Run)
}

type options struct {
	log    *slog.Logger
	limit  *ratelimit.Limiter
	reg    prometheus.Registerer
	cfg    Config
	origin Origin
	sched  Scheduler
	fresh  OriginPieces
}

// Option configures New.
type Option func(*options)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRateLimit shares the host's download limiter.
func WithRateLimit(l *ratelimit.Limiter) Option { return func(o *options) { o.limit = l } }

// WithRegisterer exports download metrics.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithConfig tunes the downloader.
func WithConfig(c Config) Option { return func(o *options) { o.cfg = c } }

// WithOrigin sets the back-to-source client (without it, only peers serve).
func WithOrigin(src Origin) Option { return func(o *options) { o.origin = src } }

// WithScheduler makes downloads ask a scheduler for parents (falling back
// to the DHT when no scheduler answers).
func WithScheduler(s Scheduler) Option { return func(o *options) { o.sched = s } }

// WithOriginPieces reports the pieces fetched from the origin to f.
func WithOriginPieces(f OriginPieces) Option { return func(o *options) { o.fresh = f } }

// New returns a downloader. h must be the admission-gated host.
func New(h host.Host, store Store, finder Finder, announce Announcer, opts ...Option) *Downloader {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	o.cfg.setDefaults()
	d := &Downloader{
		host: h, store: store, finder: finder, announce: announce, origin: o.origin, sched: o.sched, fresh: o.fresh,
		cfg: o.cfg, log: o.log, limit: o.limit, metrics: newMetrics(), bad: newBadPeers(),
		jobs: make(map[protocol.TaskID]*Job),
		ctx:  context.Background(),
	}
	if o.reg != nil {
		d.metrics.register(o.reg)
	}
	return d
}

// Run sets the downloader's lifetime: when ctx ends every job is cancelled.
func (d *Downloader) Run(ctx context.Context) error {
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	<-ctx.Done()
	d.mu.Lock()
	jobs := make([]*Job, 0, len(d.jobs))
	for _, j := range d.jobs {
		jobs = append(jobs, j)
	}
	d.mu.Unlock()
	for _, j := range jobs {
		j.cancel()
		<-j.done
	}
	return nil
}

// Start attaches to the download of req.ID, starting it if needed. The
// caller must Release the job when it no longer needs it; when the last
// caller releases an unfinished job, the job stops (its verified pieces stay
// in the store for a later resume). A job that already failed is not
// joined: Start waits for it to end (its cleanup is short) and starts anew.
func (d *Downloader) Start(req Request) (*Job, error) {
	if req.Kind == 0 {
		return nil, fmt.Errorf("download %s: task kind unset", req.ID.Short())
	}
	if req.Kind == storage.KindContent && req.Source == nil && len(req.Parents) == 0 && d.finder == nil {
		return nil, ErrNoSource
	}
	d.mu.Lock()
	for {
		j, ok := d.jobs[req.ID]
		if !ok || j.finished() || !j.failing.Load() {
			break
		}
		// The job has failed and is cleaning up: a new request gets a new
		// attempt, not the failure decided before it came.
		d.mu.Unlock()
		if testHookStartWaits != nil {
			testHookStartWaits()
		}
		<-j.done
		d.mu.Lock()
	}
	if j, ok := d.jobs[req.ID]; ok && !j.finished() {
		j.refs++
		d.mu.Unlock()
		if req.SeedTriggered {
			// The scheduler chose this seed to fetch the task from the
			// origin while a download of it was already running here (a
			// pull through this seed's own mirror, say): that download,
			// waiting for peers as any other, is the one to go to the
			// origin, or everyone waits for its timeout.
			j.allowSource(j.ctx)
		}
		return j, nil
	}
	defer d.mu.Unlock()
	ctx, cancel := context.WithCancel(d.ctx)
	j := newJob(d, req, ctx, cancel)
	d.jobs[req.ID] = j
	go j.run()
	return j, nil
}

func (d *Downloader) forget(j *Job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.jobs[j.req.ID] == j {
		delete(d.jobs, j.req.ID)
	}
}

// Active returns the number of running jobs.
func (d *Downloader) Active() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.jobs)
}
