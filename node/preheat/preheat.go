// Package preheat serves the preheat protocol (/dragonfly/preheat/1.0.0)
// on seed peers: an admitted cluster member (the manager) asks the seed peer
// to download a task through its normal download conductor, to say where a
// task is cached, or to delete it cluster-wide. Downloads stream progress
// frames and end with SUCCEEDED only once the task is complete and
// verified; origin headers are handed to the conductor for the origin only.
//
// Requests are bounded (frame size, URL, headers, digest grammar, checked
// by protocol.ParsePreheatRequest), the number of preheats running at once
// is bounded and so is the queue waiting for a slot; a caller that goes
// away cancels its download (verified pieces stay for a later resume).
package preheat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
)

// ErrBusy: every preheat slot is taken and the waiting queue is full.
var ErrBusy = errors.New("preheat: seed peer busy")

// Job is a running download as the handler watches it.
type Job interface {
	Done() <-chan struct{}
	// Err is nil once Done closed for a complete, verified task.
	Err() error
	// Progress returns bytes held so far and the content length (0 unknown).
	Progress() (done, total int64)
	Release()
}

// Where says where a task is cached.
type Where struct {
	Local         bool     // this seed peer holds it complete
	CompletePeers int      // peers holding it complete (scheduler's count, else peers found)
	Peers         []string // some of their peer IDs
}

// Tasks is what the handler needs from the node.
type Tasks interface {
	Preheat(req protocol.PreheatRequest) (Job, error)
	Where(ctx context.Context, req protocol.PreheatRequest) (Where, error)
	Delete(ctx context.Context, req protocol.PreheatRequest) error
}

// Defaults.
const (
	DefaultConcurrent = 4
	DefaultQueue      = 64
	// DefaultInterval is how often a running preheat reports progress.
	DefaultInterval = 500 * time.Millisecond
	// writeTimeout bounds writing one frame: a requester that stops
	// reading loses its stream (and the download).
	writeTimeout = 30 * time.Second
	readTimeout  = 10 * time.Second
	opTimeout    = 30 * time.Second
)

// Server is the preheat protocol handler.
type Server struct {
	tasks    Tasks
	log      *slog.Logger
	slots    chan struct{}
	queue    int64
	waiting  atomic.Int64
	interval time.Duration
	requests *prometheus.CounterVec
	running  prometheus.Gauge
}

// Option configures New.
type Option func(*Server)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithConcurrency bounds running preheats (n) and preheats waiting for a slot (queue).
func WithConcurrency(n, queue int) Option {
	return func(s *Server) {
		if n > 0 {
			s.slots = make(chan struct{}, n)
		}
		if queue >= 0 {
			s.queue = int64(queue)
		}
	}
}

// WithInterval sets how often progress is reported.
func WithInterval(d time.Duration) Option { return func(s *Server) { s.interval = d } }

// WithRegisterer exports dragonfly_node_preheat_requests_total{op,result} and
// dragonfly_node_preheats_running.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Server) {
		if reg != nil {
			reg.MustRegister(s.requests, s.running)
		}
	}
}

// New returns a handler over tasks.
func New(tasks Tasks, opts ...Option) *Server {
	s := &Server{
		tasks: tasks, log: slog.New(slog.DiscardHandler), slots: make(chan struct{}, DefaultConcurrent),
		queue: DefaultQueue, interval: DefaultInterval,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dragonfly_node_preheat_requests_total", Help: "Preheat protocol requests by operation and result.",
		}, []string{"op", "result"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dragonfly_node_preheats_running", Help: "Preheat downloads running now.",
		}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Register installs the handler on h, which must be the admission-gated
// host: only admitted cluster members reach it.
func (s *Server) Register(h host.Host) { h.SetStreamHandler(protocol.PreheatID, s.handle) }

func opName(op pb.PreheatOp) string {
	switch op {
	case pb.PreheatOp_PREHEAT_OP_PREHEAT:
		return "preheat"
	case pb.PreheatOp_PREHEAT_OP_STAT:
		return "stat"
	case pb.PreheatOp_PREHEAT_OP_DELETE:
		return "delete"
	}
	return "unknown"
}

// errText makes an error fit the wire's message field.
func errText(err error) string {
	msg := strings.ToValidUTF8(err.Error(), "?")
	if len(msg) > protocol.MaxMessageLength {
		msg = msg[:protocol.MaxMessageLength]
		for !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
	}
	return msg
}

func (s *Server) handle(st network.Stream) {
	defer st.Close()
	_ = st.SetReadDeadline(time.Now().Add(readTimeout))
	var m pb.PreheatRequest
	if err := protocol.ReadMsg(bufio.NewReaderSize(st, 4096), &m, protocol.MaxPreheatRequestSize); err != nil {
		s.requests.WithLabelValues("unknown", "bad_frame").Inc()
		_ = st.Reset()
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	op := opName(m.GetOp())
	req, err := protocol.ParsePreheatRequest(&m)
	if err != nil {
		s.requests.WithLabelValues(op, "bad_request").Inc()
		s.send(st, &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_FAILED, Error: errText(err)})
		return
	}
	// The requester half-closes after its request; a reset or anything
	// else it writes means it is gone: stop working for it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		var b [1]byte
		if _, err := st.Read(b[:]); !errors.Is(err, io.EOF) {
			cancel()
		}
	}()
	log := s.log.With("op", op, "task", req.TaskID.Short(), "from", st.Conn().RemotePeer())
	var final *pb.PreheatProgress
	switch req.Op {
	case pb.PreheatOp_PREHEAT_OP_PREHEAT:
		final = s.preheat(ctx, st, req, log)
	case pb.PreheatOp_PREHEAT_OP_STAT:
		final = s.stat(ctx, req)
	case pb.PreheatOp_PREHEAT_OP_DELETE:
		final = s.delete(ctx, req, log)
	}
	if final == nil {
		s.requests.WithLabelValues(op, "gone").Inc()
		_ = st.Reset()
		return
	}
	result := "ok"
	if final.State == pb.PreheatState_PREHEAT_STATE_FAILED {
		result = "failed"
	}
	s.requests.WithLabelValues(op, result).Inc()
	s.send(st, final)
}

func (s *Server) send(st network.Stream, m *pb.PreheatProgress) bool {
	_ = st.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := protocol.WriteMsg(st, m); err != nil {
		_ = st.Reset()
		return false
	}
	return true
}

func failed(id protocol.TaskID, err error) *pb.PreheatProgress {
	return &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_FAILED, TaskId: id.Multihash(), Error: errText(err)}
}

// preheat runs a download and streams its progress; nil means the
// requester went away.
func (s *Server) preheat(ctx context.Context, st network.Stream, req protocol.PreheatRequest, log *slog.Logger) *pb.PreheatProgress {
	select {
	case s.slots <- struct{}{}:
	default:
		if s.waiting.Add(1) > s.queue {
			s.waiting.Add(-1)
			return failed(req.TaskID, fmt.Errorf("%w: %d preheats running and %d waiting; retry later", ErrBusy, cap(s.slots), s.queue))
		}
		ok := s.send(st, &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_QUEUED, TaskId: req.TaskID.Multihash()})
		if ok {
			select {
			case s.slots <- struct{}{}:
			case <-ctx.Done():
				ok = false
			}
		}
		s.waiting.Add(-1)
		if !ok {
			return nil
		}
	}
	defer func() { <-s.slots }()
	s.running.Inc()
	defer s.running.Dec()

	start := time.Now()
	job, err := s.tasks.Preheat(req)
	if err != nil {
		log.Warn("preheat refused", "err", err)
		return failed(req.TaskID, err)
	}
	defer job.Release()
	log.Info("preheat started")
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-job.Done():
			done, total := job.Progress()
			if err := job.Err(); err != nil {
				log.Warn("preheat failed", "err", err)
				return failed(req.TaskID, err)
			}
			log.Info("preheat done", "bytes", total, "took", time.Since(start))
			return &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_SUCCEEDED, TaskId: req.TaskID.Multihash(),
				BytesDone: uint64(max(done, total)), Total: uint64(total)}
		case <-ctx.Done():
			log.Info("preheat requester went away: download stops, verified pieces stay")
			return nil
		case <-t.C:
			done, total := job.Progress()
			if total > 0 {
				done = min(done, total)
			}
			if !s.send(st, &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_RUNNING, TaskId: req.TaskID.Multihash(),
				BytesDone: uint64(max(done, 0)), Total: uint64(max(total, 0))}) {
				return nil
			}
		}
	}
}

func (s *Server) stat(ctx context.Context, req protocol.PreheatRequest) *pb.PreheatProgress {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	w, err := s.tasks.Where(ctx, req)
	if err != nil {
		return failed(req.TaskID, err)
	}
	peers := w.Peers
	if len(peers) > protocol.MaxPreheatPeers {
		peers = peers[:protocol.MaxPreheatPeers]
	}
	return &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_SUCCEEDED, TaskId: req.TaskID.Multihash(),
		Local: w.Local, CompletePeers: uint32(max(w.CompletePeers, 0)), Peers: peers}
}

func (s *Server) delete(ctx context.Context, req protocol.PreheatRequest, log *slog.Logger) *pb.PreheatProgress {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := s.tasks.Delete(ctx, req); err != nil {
		return failed(req.TaskID, err)
	}
	log.Info("task deleted on a preheat-protocol request")
	return &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_SUCCEEDED, TaskId: req.TaskID.Multihash()}
}
