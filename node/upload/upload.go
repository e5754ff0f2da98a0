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
	slots   chan struct{}
	idle    time.Duration
	metrics *metrics
	sent    atomic.Int64
}

type options struct {
	log   *slog.Logger
	limit *ratelimit.Limiter
	max   int
	idle  time.Duration
	reg   prometheus.Registerer
}

// Option configures New.
type Option func(*options)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRateLimit shares the host's upload limiter (nil: unlimited).
func WithRateLimit(l *ratelimit.Limiter) Option { return func(o *options) { o.limit = l } }

// WithMaxConcurrent bounds pieces being uploaded at once; requests beyond it
// are answered BUSY so the requester goes to another parent.
func WithMaxConcurrent(n int) Option { return func(o *options) { o.max = n } }

// WithIdleTimeout sets how long a piece stream may sit without a request.
func WithIdleTimeout(d time.Duration) Option { return func(o *options) { o.idle = d } }

// WithRegisterer exports upload metrics.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// New returns an upload service over store.
func New(store Store, opts ...Option) *Server {
	o := options{log: slog.New(slog.DiscardHandler), max: DefaultMaxConcurrent, idle: DefaultIdleTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		store:   store,
		log:     o.log,
		limit:   o.limit,
		slots:   make(chan struct{}, o.max),
		idle:    o.idle,
		metrics: newMetrics(),
	}
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

// BytesSent is the piece bytes uploaded so far.
func (s *Server) BytesSent() int64 { return s.sent.Load() }

// MaxConcurrent is the number of upload slots.
func (s *Server) MaxConcurrent() int { return cap(s.slots) }

// InFlight reports pieces being uploaded right now.
func (s *Server) InFlight() int { return len(s.slots) }

type metrics struct {
	bytes  prometheus.Counter
	pieces *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_upload_bytes_total", Help: "Piece bytes uploaded to peers."}),
		pieces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_upload_pieces_total", Help: "Piece requests answered, by status."}, []string{"status"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) {
	reg.MustRegister(m.bytes, m.pieces)
}
