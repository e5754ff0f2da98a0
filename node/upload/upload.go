// Package upload serves a node's verified pieces to admitted peers: the
// piece protocol (request a piece, get a header and the raw bytes) and the
// pieces-sync protocol (a stream of which pieces this node holds, kept up to
// date while it is still downloading). Only verified pieces are ever served;
// every request is bounded, rate limited and deadlined.
package upload

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dragonfly-p2p/df/node/ratelimit"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Store is the part of storage.Store the upload service uses.
type Store interface {
	Open(ctx context.Context, id protocol.TaskID) (storage.Task, error)
}

// Defaults.
const (
	DefaultMaxConcurrent = 64
	// DefaultIdleTimeout closes a piece stream with no request for this long.
	DefaultIdleTimeout = time.Minute
	// DefaultQueueWait is how long a piece request waits for an upload slot
	// before it is answered BUSY.
	DefaultQueueWait = 1 * time.Second
	// minUploadRate sets the write deadline of a piece: 15 s plus its length
	// at this rate. A reader slower than that loses the stream (and frees the
	// upload slot).
	minUploadRate = 64 << 10
)

// Server is the upload service.
type Server struct {
	store   Store
	log     *slog.Logger
	limit   *ratelimit.Limiter
	slots   *slotQueue
	wait    time.Duration
	idle    time.Duration
	metrics *metrics
	sent    atomic.Int64
	seed    *superSeed
}

type options struct {
	log   *slog.Logger
	limit *ratelimit.Limiter
	max   int
	cap   int64
	idle  time.Duration
	wait  time.Duration
	reg   prometheus.Registerer
}

// Option configures New.
type Option func(*options)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRateLimit shares the host's upload limiter (nil: unlimited).
func WithRateLimit(l *ratelimit.Limiter) Option { return func(o *options) { o.limit = l } }

// WithMaxConcurrent bounds pieces being uploaded at once; requests beyond it
// wait for a slot (see WithQueueWait), the pieces sent fewest times first.
func WithMaxConcurrent(n int) Option { return func(o *options) { o.max = n } }

// WithUploadCapacity tells the upload slots the uplink's bytes per second
// (0: unknown). With it, more uploads than WithMaxConcurrent's are let
// through (at most three times as many) while the ones under way leave the uplink
// underused because their children receive slower than it sends.
func WithUploadCapacity(bytesPerSecond int64) Option {
	return func(o *options) { o.cap = bytesPerSecond }
}

// WithQueueWait sets how long a request waits for an upload slot before it
// is answered BUSY so the requester goes to another parent (default 2 s;
// 0 or less: answer BUSY at once).
func WithQueueWait(d time.Duration) Option { return func(o *options) { o.wait = d } }

// WithIdleTimeout sets how long a piece stream may sit without a request.
func WithIdleTimeout(d time.Duration) Option { return func(o *options) { o.idle = d } }

// WithRegisterer exports upload metrics.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// New returns an upload service over store.
func New(store Store, opts ...Option) *Server {
	o := options{log: slog.New(slog.DiscardHandler), max: DefaultMaxConcurrent, idle: DefaultIdleTimeout, wait: DefaultQueueWait}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		store: store,
		log:   o.log,
		limit: o.limit,
		slots: newSlotQueue(o.max, o.cap),
		wait:  o.wait,
		idle:  o.idle,
		seed:  newSuperSeed(),
	}
	s.metrics = newMetrics(s.slots)
	if o.reg != nil {
		s.metrics.register(o.reg)
	}
	return s
}

// Register installs the handlers on h, which must be the admission-gated
// host: non-members never reach them.
func (s *Server) Register(h host.Host) {
	h.SetStreamHandler(protocol.PieceID, s.HandlePiece)
	h.SetStreamHandler(protocol.PiecesSyncID, s.HandleSync)
}

// FromOrigin tells the server that this node fetched piece n of task id
// from the origin: nobody else holds it yet, so it is announced to one
// child first (super-seeding; see superseed.go).
func (s *Server) FromOrigin(id protocol.TaskID, n uint32) { s.seed.fromOrigin(id, n) }

// BytesSent is the piece bytes uploaded so far.
func (s *Server) BytesSent() int64 { return s.sent.Load() }

// MaxConcurrent is the number of upload slots.
func (s *Server) MaxConcurrent() int { return s.slots.size }

// InFlight reports pieces being uploaded right now.
func (s *Server) InFlight() int { return s.slots.inFlight() }

// Waiting reports piece requests waiting for an upload slot.
func (s *Server) Waiting() int { return s.slots.waiting() }

type metrics struct {
	bytes     prometheus.Counter
	pieces    *prometheus.CounterVec
	stretched prometheus.CounterFunc
	inUse     prometheus.GaugeFunc
	waiting   prometheus.GaugeFunc
}

func newMetrics(q *slotQueue) *metrics {
	return &metrics{
		stretched: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_upload_slots_stretched_total",
			Help: "Uploads granted beyond the upload slots because the ones under way left the uplink idle."},
			func() float64 { return float64(q.stretchedTotal()) }),
		inUse: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dragonfly_dfnode_upload_slots_in_use",
			Help: "Pieces being uploaded now (above the configured slots while a stretch holds)."},
			func() float64 { return float64(q.inFlight()) }),
		waiting: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dragonfly_dfnode_upload_requests_waiting",
			Help: "Piece requests waiting for an upload slot."},
			func() float64 { return float64(q.waiting()) }),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_upload_bytes_total", Help: "Piece bytes uploaded to peers."}),
		pieces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_upload_pieces_total", Help: "Piece requests answered, by status."}, []string{"status"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) {
	reg.MustRegister(m.bytes, m.pieces, m.stretched, m.inUse, m.waiting)
}
