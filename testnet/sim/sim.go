// Package sim is a flow-level, discrete-time simulation of a swarm
// download that drives the real scheduler code (scheduler/resource,
// scheduler/evaluator, scheduler/scheduling) with thousands of simulated
// peers and no libp2p at all.
//
// What is modelled:
//
//   - Hosts with an upload and a download capacity, and an origin with an
//     upload capacity. Every piece transfer is a flow; flows share each
//     uplink and downlink max-min fairly (progressive filling, a few rounds
//     per time step), the way many TCP/QUIC streams roughly do.
//   - The scheduler exactly as the schedule service drives it: registration
//     → Schedule; piece results (AddPiece, the parent's piece cost, the
//     task marked changed on a peer's first and last piece); waiting peers
//     scheduled again every 200 ms (at once when the task changed, else
//     every 500 ms); running peers with fewer than candidate-limit parents
//     offered more (More) every 250 ms; seed triggers; completion
//     (PeerDone); host announcements every 30 s with the measured upload
//     rate, uploads in flight and upload slots (which reset the
//     scheduler's bookings); GC with the service's default policy.
//   - The node's download: streams per parent from the decision's weights
//     (3 for the heaviest, as node/download), rarest-first piece choice among
//     the pieces a parent holds and nobody fetches (random start, 256-piece
//     sample, like plan.chooseLocked), pieces announced to children the
//     moment they are verified (pieces-sync), the endgame hedge (a piece in
//     flight for over 3× the median piece time, at least 2 s, is asked of
//     another parent too), and one origin worker fetching, in piece order,
//     the pieces no connected parent holds once the scheduler says
//     back-to-source (the node reads one range in order).
//   - The node's upload side (upload.go): upload slots by the node's
//     automatic rule (one per 2 MiB/s, 2..64) with the wait queue
//     (upload.DefaultQueueWait) that grants a freed slot to the least-sent
//     piece; the queue's stretch beyond the number while the uplink carried
//     less than 90 % of its rate in the last step, held while requests wait
//     (a freed slot goes on to a waiter above the number too); a request
//     that waited too long is answered BUSY and the stream sleeps 100–500 ms
//     (BUSY is not reported to the scheduler); and super-seeding of the
//     pieces a host fetched from the origin.
//
// What is not: latency, loss, protocol and crypto overhead, the streaming
// reader's window, the DHT, probes (no RTTs: hosts score on load, pieces
// and type alone), piece verification failures and faults (the fault
// matrix covers those with real nodes), and the scheduler's lock and wire
// codecs (decisions are timed around the scheduling calls only).
package sim

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/scheduler/evaluator"
	"github.com/dragonfly-p2p/df/scheduler/resource"
	"github.com/dragonfly-p2p/df/scheduler/scheduling"
	"github.com/dragonfly-p2p/df/scheduler/service"
)

// Config is one simulated swarm download.
type Config struct {
	// Peers download the file (the seed, if any, is extra).
	Peers int
	// Size is the content length; PieceLength 0 uses the automatic rule.
	Size        int64
	PieceLength uint32
	// Up, Down and OriginUp are bytes per second.
	Up, Down, OriginUp int64
	// Seed adds a seed peer that the scheduler triggers.
	Seed bool
	// Arrival spreads peer starts uniformly over this window (0: all at once).
	Arrival time.Duration
	// Step is the time step (default 100 ms).
	Step time.Duration
	// MaxTime stops a run that has not finished (default 24 h simulated).
	MaxTime time.Duration
	// Scheduling and Weights configure the real scheduler (zero: defaults).
	Scheduling scheduling.Config
	Weights    *evaluator.Weights
	// RandSeed makes a run repeatable.
	RandSeed uint64
}

// Errors.
var (
	// ErrConfig: the configuration cannot be simulated.
	ErrConfig = errors.New("sim: bad configuration")
	// ErrUnfinished: some peers had not completed at MaxTime.
	ErrUnfinished = errors.New("sim: peers did not finish")
)

// Result is what a run measured. Times are simulated.
type Result struct {
	Peers       int     `json:"peers"`
	Size        int64   `json:"size"`
	PieceLength uint32  `json:"piece_length"`
	Pieces      uint32  `json:"pieces"`
	OriginBytes int64   `json:"origin_bytes"`
	OriginRatio float64 `json:"origin_ratio"`
	// UploadMaxOverMean is the busiest peer's upload ÷ the mean peer upload
	// (the seed excluded); UploadP99OverMean the 99th percentile's.
	UploadMaxOverMean float64 `json:"upload_max_over_mean"`
	UploadP99OverMean float64 `json:"upload_p99_over_mean"`
	SeedUploadRatio   float64 `json:"seed_upload_ratio,omitempty"` // seed upload ÷ size
	P50               float64 `json:"p50_s"`
	P99               float64 `json:"p99_s"`
	Last              float64 `json:"last_s"`
	// Bound is the Kumar–Ross bound; Efficiency Bound ÷ Last.
	Bound      float64 `json:"bound_s"`
	Efficiency float64 `json:"efficiency"`
	Failed     int     `json:"failed"`
	// Decisions counts scheduling calls by outcome (Schedule and More).
	Decisions map[string]int `json:"decisions"`
	// SchedulerCPU is the time spent inside the scheduler's calls
	// (Schedule, More, piece results, announcements, GC); PerDecision
	// that ÷ the number of Schedule and More calls.
	SchedulerCPU time.Duration `json:"scheduler_cpu_ns"`
	PerDecision  time.Duration `json:"per_decision_ns"`
	// Busy counts piece requests a parent refused (upload slots full).
	Busy int `json:"busy"`
	// Stretched counts upload slots granted beyond a host's number.
	Stretched int           `json:"stretched"`
	Wall      time.Duration `json:"wall_ns"`
	// Trace samples the swarm every 10 simulated seconds.
	Trace []Sample `json:"trace"`
}

// Sample is the swarm's state at one time.
type Sample struct {
	T float64 `json:"t_s"`
	// Holders hold at least one piece; Done completed; Waiting have no
	// parent and no origin; Parents is the mean parent count of running peers.
	Holders, Done, Waiting int
	Parents                float64
	// Flows are piece transfers in progress (from the origin: Origin).
	Flows, Origin int
	// Rate is the swarm's aggregate download rate (bytes/s) over the last interval.
	Rate float64
}

// String is a one-line summary.
func (r Result) String() string {
	return fmt.Sprintf("%d peers, %d×%d B: origin %.3f×, upload max/mean %.2f (p99 %.2f), p50 %.1fs p99 %.1fs last %.1fs, bound %.1fs, efficiency %.2f, scheduler %v (%v/decision, %d decisions), wall %v",
		r.Peers, r.Pieces, r.PieceLength, r.OriginRatio, r.UploadMaxOverMean, r.UploadP99OverMean, r.P50, r.P99, r.Last, r.Bound, r.Efficiency,
		r.SchedulerCPU.Round(time.Millisecond), r.PerDecision.Round(10*time.Nanosecond), r.total(), r.Wall.Round(time.Millisecond))
}

func (r Result) total() int {
	n := 0
	for _, v := range r.Decisions {
		n += v
	}
	return n
}

const (
	rescheduleEvery = 0.2  // service Intervals.Reschedule
	waitingEvery    = 0.5  // a waiting peer is scheduled again this often without changes
	topUpEvery      = 0.25 // service Intervals.TopUp
	announceEvery   = 30.0 // node host announcements
	gcEvery         = 10.0 // service Intervals.GC
	streamsPerPar   = 3    // node/download StreamsPerParent
	sourceWorkers   = 1    // node/download SourceConcurrency (one streamed range: pieces one after another)
	pickSample      = 256  // plan.chooseLocked sample
)

type host struct {
	idx          int
	id           peer.ID
	seed         bool
	up, down     float64
	slots        int
	uploads      int
	downloads    int
	sent         float64
	lastSent     float64
	nextAnnounce float64

	rh *resource.Host
	rp *resource.Peer

	start      float64
	registered bool
	have       []bool
	nHave      int
	rarity     []uint16
	inflight   []uint8
	started    []float64 // when the oldest in-flight fetch of a piece began
	durations  []float64 // recent piece fetch times (for hedging)
	parents    []*link
	children   []*link
	// upload side (upload.go)
	queue       []*request
	sentCount   []uint32
	seeded      map[uint32]*seedPiece
	outstanding map[*host]int
	assigned    map[*host]int
	lastGrant   float64 // when an upload slot was last granted
	source      bool
	srcBusy     int
	done        bool
	doneAt      float64
	failed      bool
	waiting     bool
	growing     bool
	nextTopUp   float64
	lastUpdate  float64
}

// link is a child's connection to one parent (nil parent: the origin).
type link struct {
	child, parent *host
	streams, busy int
	blocked       bool    // nothing to pick until the parent or the child changes
	retryAt       float64 // after a busy answer
}

type flow struct {
	l        *link
	from, to int // host index; from == origin for the origin
	piece    uint32
	left     float64
	rate     float64
	started  float64
	frozen   bool
}

type sim struct {
	cfg       Config
	layout    protocol.Layout
	rnd       *rand.Rand
	store     *resource.Store
	sched     *scheduling.Scheduler
	task      *resource.Task
	hosts     []*host
	byHost    map[*resource.Host]*host
	order     []int
	seq       uint64
	uploaders []*host // hosts that fetched from the origin (super-seeding)
	origin    int
	flows     []*flow
	now       float64
	epoch     time.Time
	dirty     bool
	cpu       time.Duration
	calls     int
	dec       map[string]int
	busy      int
	stretched int
	gcPol     resource.GCPolicy

	trace          []Sample
	lastBytes      float64
	received       float64
	remUp, remDown []float64
	nUp, nDown     []int
	originBytes    float64
}

// Run simulates cfg.
func Run(cfg Config) (Result, error) {
	if cfg.Peers < 1 || cfg.Size < 1 || cfg.Up <= 0 || cfg.Down <= 0 || cfg.OriginUp <= 0 {
		return Result{}, fmt.Errorf("%w: peers, size and bandwidths must be positive", ErrConfig)
	}
	if cfg.Peers > 200_000 {
		return Result{}, fmt.Errorf("%w: %d peers, at most 200000", ErrConfig, cfg.Peers)
	}
	if cfg.PieceLength == 0 {
		cfg.PieceLength = protocol.AutoPieceLength(cfg.Size)
	}
	if cfg.Step <= 0 {
		cfg.Step = 100 * time.Millisecond
	}
	if cfg.MaxTime <= 0 {
		cfg.MaxTime = 24 * time.Hour
	}
	layout, err := protocol.NewLayout(cfg.Size, cfg.PieceLength)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := cfg.Scheduling.Validate(); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	w := evaluator.DefaultWeights()
	if cfg.Weights != nil {
		w = *cfg.Weights
	}
	s := &sim{cfg: cfg, layout: layout, rnd: rand.New(rand.NewPCG(cfg.RandSeed, 0x5eed)),
		store: resource.NewStore(resource.Limits{}), dec: map[string]int{}, byHost: map[*resource.Host]*host{}, gcPol: service.DefaultGC(),
		epoch: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.sched = scheduling.New(s.store, evaluator.New(w), cfg.Scheduling)
	wall := time.Now()
	if err := s.setup(); err != nil {
		return Result{}, err
	}
	err = s.loop()
	res := s.result()
	res.Wall = time.Since(wall)
	return res, err
}

func (s *sim) t() time.Time { return s.epoch.Add(time.Duration(s.now * float64(time.Second))) }

// timed runs f and adds its duration to the scheduler's CPU.
func (s *sim) timed(f func()) {
	t0 := time.Now()
	f()
	s.cpu += time.Since(t0)
}

func (s *sim) setup() error {
	n := s.cfg.Peers
	if s.cfg.Seed {
		n++
	}
	count := s.layout.PieceCount()
	s.origin = n
	s.remUp, s.remDown = make([]float64, n+1), make([]float64, n+1)
	s.nUp, s.nDown = make([]int, n+1), make([]int, n+1)
	sum := sha256.Sum256([]byte(fmt.Sprintf("sim %d %d", s.cfg.Size, s.cfg.RandSeed)))
	tid := protocol.ContentTaskID(protocol.Digest(sum))
	var err error
	s.timed(func() {
		s.task = s.store.EnsureTask(tid, s.t())
		s.task.Kind = pb.TaskKind_TASK_KIND_URL
		s.task.URL = "http://origin.sim/file"
		s.task.PieceLength = s.cfg.PieceLength
		err = s.task.SetLayout(s.layout)
	})
	if err != nil {
		return err
	}
	slots := int(min(64, max(2, s.cfg.Up/(2<<20)))) // node.Config.UploadSlots
	for i := range n {
		h := &host{idx: i, id: peer.ID(fmt.Sprintf("sim-host-%06d", i)), up: float64(s.cfg.Up), down: float64(s.cfg.Down), slots: slots,
			have: make([]bool, count), rarity: make([]uint16, count), inflight: make([]uint8, count), started: make([]float64, count)}
		h.seed = s.cfg.Seed && i == n-1
		if !h.seed && s.cfg.Arrival > 0 {
			h.start = float64(i) / float64(s.cfg.Peers) * s.cfg.Arrival.Seconds()
		}
		h.nextAnnounce = s.rnd.Float64() * announceEvery
		s.timed(func() {
			h.rh, err = s.store.UpsertHost(h.id, s.info(h), s.t())
			if err == nil {
				h.rh.Push = func(*pb.ScheduleResponse) bool { return true } // an open host stream
			}
		})
		if err != nil {
			return err
		}
		s.hosts = append(s.hosts, h)
		s.byHost[h.rh] = h
	}
	return nil
}

var noAddrs = []ma.Multiaddr{}

func (s *sim) info(h *host) protocol.HostInfo {
	return protocol.HostInfo{Hostname: string(h.id), Seed: h.seed, UploadCapacity: uint64(h.up * 8),
		UploadRate: uint64((h.sent - h.lastSent) * 8 / announceEvery), InFlight: uint32(h.uploads), MaxUploads: uint32(h.slots), Addrs: noAddrs}
}

func (s *sim) peers() []*host {
	if s.cfg.Seed {
		return s.hosts[:len(s.hosts)-1]
	}
	return s.hosts
}

// register is PeerRegister: the peer joins the task and is scheduled.
func (s *sim) register(h *host, backToSource bool) {
	h.registered = true
	var err error
	s.timed(func() {
		h.rp, err = s.store.AddPeer(h.rh, s.task, s.t())
		if err == nil {
			h.rp.Push = func(*pb.ScheduleResponse) bool { return true }
			h.rp.NeedBackToSource = backToSource
		}
	})
	if err != nil {
		h.failed = true
		return
	}
	h.lastUpdate = s.now
	s.decide(h)
}

func actionName(a scheduling.Action) string {
	switch a {
	case scheduling.Parents:
		return "parents"
	case scheduling.BackToSource:
		return "back-to-source"
	case scheduling.Empty:
		return "empty"
	case scheduling.Fail:
		return "failure"
	}
	return "wait"
}

// decide is the service's decide: Schedule and apply the answer.
func (s *sim) decide(h *host) {
	var d scheduling.Decision
	s.timed(func() { d = s.sched.Schedule(h.rp, s.t()) })
	s.calls++
	s.dec[actionName(d.Action)]++
	h.waiting = d.Action == scheduling.Wait
	if d.Seed != nil {
		s.dec["seed-trigger"]++
		if sh := s.byHost[d.Seed]; sh != nil && !sh.registered {
			s.register(sh, true)
		}
	}
	switch d.Action {
	case scheduling.Parents:
		h.nextTopUp = s.now + topUpEvery
		h.growing = true
		s.connect(h, d)
	case scheduling.BackToSource:
		h.source = true
	case scheduling.Fail:
		h.failed = true
	}
}

// connect adds a decision's parents with streams split by weight.
func (s *sim) connect(h *host, d scheduling.Decision) {
	var maxW uint32
	for _, w := range d.Weights {
		maxW = max(maxW, w)
	}
	for i, rp := range d.Parents {
		p := s.hostOf(rp)
		if p == nil {
			continue
		}
		streams := streamsPerPar
		if maxW > 0 {
			streams = max(1, int(d.Weights[i])*streamsPerPar/int(maxW))
		}
		l := &link{child: h, parent: p, streams: streams}
		h.parents = append(h.parents, l)
		p.children = append(p.children, l)
		for n, ok := range p.have {
			if ok && s.visible(p, h, uint32(n)) {
				h.rarity[n]++
			}
		}
	}
}

func (s *sim) hostOf(rp *resource.Peer) *host { return s.byHost[rp.Host] }

// round is the service's rescheduleRound.
func (s *sim) round() {
	limit := s.sched.Config().CandidateLimit
	for _, h := range s.hosts {
		if !h.registered || h.done || h.failed {
			continue
		}
		if h.waiting && (s.dirty || s.now-h.lastUpdate >= waitingEvery) {
			h.lastUpdate = s.now
			s.decide(h)
			continue
		}
		if h.growing && h.rp.State == resource.PeerRunning && len(h.rp.Parents()) < limit && s.now >= h.nextTopUp {
			h.nextTopUp = s.now + topUpEvery
			var d scheduling.Decision
			s.timed(func() { d = s.sched.More(h.rp) })
			s.calls++
			if d.Action == scheduling.Parents {
				s.dec["more-parents"]++
				s.connect(h, d)
			}
		}
	}
	s.dirty = false
}

// pickInOrder is plan.pickForSource: the first eligible missing piece
// nobody fetches, from the start (the node's origin fetch is one range read
// in order).
func (s *sim) pickInOrder(h *host, eligible func(uint32) bool) (uint32, bool) {
	for n := range uint32(len(h.have)) {
		if !h.have[n] && h.inflight[n] == 0 && eligible(n) {
			return n, true
		}
	}
	return 0, false
}

// pick is plan.chooseLocked without the streaming window: the rarest
// eligible piece among up to pickSample, from a random start.
func (s *sim) pick(h *host, eligible func(uint32) bool) (uint32, bool) {
	count := uint32(len(h.have))
	best, found, seen := uint32(0), false, 0
	start := uint32(s.rnd.IntN(int(count)))
	for i := uint32(0); i < count && seen < pickSample; i++ {
		n := (start + i) % count
		if h.have[n] || h.inflight[n] > 0 || !eligible(n) {
			continue
		}
		seen++
		if !found || h.rarity[n] < h.rarity[best] {
			best, found = n, true
		}
	}
	if found {
		return best, true
	}
	// Endgame: hedge a long-running fetch of an eligible piece.
	hedge := hedgeAfter(h.durations)
	for n := range count {
		if !h.have[n] && h.inflight[n] == 1 && s.now-h.started[n] > hedge && eligible(n) {
			return n, true
		}
	}
	return 0, false
}

// hedgeAfter is plan.hedgeAfterLocked: 3× the median piece time, at least
// 2 s (10 s before any piece).
func hedgeAfter(d []float64) float64 {
	if len(d) == 0 {
		return 10
	}
	c := slices.Clone(d)
	slices.Sort(c)
	return max(2, 3*c[len(c)/2])
}

// startTransfers starts what every idle stream and origin worker can, in
// a random order of hosts each step (a busy parent answers whoever asks
// first).
func (s *sim) startTransfers() {
	if len(s.order) != len(s.hosts) {
		s.order = make([]int, len(s.hosts))
		for i := range s.order {
			s.order[i] = i
		}
	}
	s.rnd.Shuffle(len(s.order), func(i, j int) { s.order[i], s.order[j] = s.order[j], s.order[i] })
	for _, i := range s.order {
		h := s.hosts[i]
		if !h.registered || h.done || h.failed {
			continue
		}
		for _, l := range h.parents {
			for !l.blocked && l.busy < l.streams && s.now >= l.retryAt {
				p := l.parent
				n, ok := s.pick(h, func(n uint32) bool { return p.have[n] && s.visible(p, h, n) })
				if !ok {
					l.blocked = true
					break
				}
				if !s.ask(l, n) {
					s.busyAnswer(l)
					break
				}
			}
		}
		if h.source {
			for h.srcBusy < sourceWorkers {
				n, ok := s.pickInOrder(h, func(n uint32) bool { return h.rarity[n] == 0 })
				if !ok {
					break
				}
				h.srcBusy++
				s.startFlow(nil, h, s.origin, n)
			}
		}
	}
}

func (s *sim) startFlow(l *link, h *host, from int, n uint32) {
	_, length, _ := s.layout.Piece(n)
	if l != nil {
		l.busy++
		l.parent.uploads++
	}
	if h.inflight[n] == 0 {
		h.started[n] = s.now
	}
	h.inflight[n]++
	h.downloads++
	s.flows = append(s.flows, &flow{l: l, from: from, to: h.idx, piece: n, left: float64(length), started: s.now})
}

// share sets every flow's rate: max-min fair over uplinks and downlinks by
// progressive filling (a few rounds; what is left unallocated is small).
func (s *sim) share() {
	for i, h := range s.hosts {
		s.remUp[i], s.remDown[i] = h.up, h.down
	}
	s.remUp[s.origin], s.remDown[s.origin] = float64(s.cfg.OriginUp), 0
	for _, f := range s.flows {
		f.rate, f.frozen = 0, false
	}
	for range 4 {
		clear(s.nUp)
		clear(s.nDown)
		active := 0
		for _, f := range s.flows {
			if !f.frozen {
				s.nUp[f.from]++
				s.nDown[f.to]++
				active++
			}
		}
		if active == 0 {
			return
		}
		for _, f := range s.flows {
			if f.frozen {
				continue
			}
			f.rate += min(s.remUp[f.from]/float64(s.nUp[f.from]), s.remDown[f.to]/float64(s.nDown[f.to]))
		}
		// Recompute what is left from the totals (exact, order-independent).
		for i, h := range s.hosts {
			s.remUp[i], s.remDown[i] = h.up, h.down
		}
		s.remUp[s.origin] = float64(s.cfg.OriginUp)
		for _, f := range s.flows {
			s.remUp[f.from] -= f.rate
			s.remDown[f.to] -= f.rate
		}
		for _, f := range s.flows {
			if s.remUp[f.from] <= 1e-6*float64(s.cfg.Up) || s.remDown[f.to] <= 1e-6*float64(s.cfg.Down) {
				f.frozen = true
			}
		}
	}
}

func (s *sim) advance(dt float64) {
	kept := s.flows[:0]
	var finished []*flow
	for _, f := range s.flows {
		moved := min(f.left, f.rate*dt)
		f.left -= moved
		s.received += moved
		if f.from == s.origin {
			s.originBytes += moved
		} else {
			s.hosts[f.from].sent += moved
		}
		if f.left <= 1e-6 {
			finished = append(finished, f)
			continue
		}
		kept = append(kept, f)
	}
	clear(s.flows[len(kept):])
	s.flows = kept
	for _, f := range finished {
		s.finish(f)
	}
}

// finish verifies a piece: the child reports it, announces it to its own
// children, and completes when it was the last.
func (s *sim) finish(f *flow) {
	h := s.hosts[f.to]
	h.inflight[f.piece]--
	h.downloads--
	var parent *resource.Peer
	if f.l != nil {
		f.l.busy--
		f.l.parent.uploads--
		f.l.blocked = false
		parent = f.l.parent.rp
		s.release(f.l.parent)
	} else {
		h.srcBusy--
	}
	if h.have[f.piece] {
		return
	}
	h.have[f.piece] = true
	h.nHave++
	if len(h.durations) >= 64 {
		h.durations = h.durations[1:]
	}
	h.durations = append(h.durations, s.now-f.started)
	for _, l := range h.parents { // plan.finish broadcasts to every worker
		l.blocked = false
	}
	cost := time.Duration((s.now - f.started) * float64(time.Second))
	s.timed(func() { s.pieceResult(h.rp, parent, f.piece, cost) })
	if f.l == nil {
		s.fromOrigin(h, f.piece)
	} else {
		s.announce(h, f.piece, nil)
	}
	if h.nHave == len(h.have) {
		h.done, h.doneAt = true, s.now
		s.timed(func() { s.peerDone(h.rp) })
	}
}

// pieceResult is the service's piece handler for a success.
func (s *sim) pieceResult(p, parent *resource.Peer, n uint32, cost time.Duration) {
	if !p.AddPiece(n) {
		return
	}
	p.LastPiece, p.Updated = s.t(), s.t()
	if p.State == resource.PeerPending {
		p.State = resource.PeerRunning
	}
	if parent != nil {
		parent.AddCost(cost, s.store.Limits().CostWindow)
	}
	if p.Held() == 1 || p.Held() == int(s.task.PieceCount()) {
		s.dirty = true
	}
}

// peerDone is the service's done handler for a success.
func (s *sim) peerDone(p *resource.Peer) {
	p.Updated = s.t()
	s.store.ClearParents(p)
	p.State = resource.PeerSucceeded
	all := make([]bool, s.task.PieceCount())
	for i := range all {
		all[i] = true
	}
	p.SetHeld(all)
	s.dirty = true
}

func (s *sim) announceHosts() {
	for _, h := range s.hosts {
		if s.now < h.nextAnnounce {
			continue
		}
		h.nextAnnounce += announceEvery
		info := s.info(h)
		h.lastSent = h.sent
		s.timed(func() { _, _ = s.store.UpsertHost(h.id, info, s.t()) })
	}
}

func (s *sim) loop() error {
	dt := s.cfg.Step.Seconds()
	nextRound, nextGC, nextSample := 0.0, gcEvery, 0.0
	for {
		for _, h := range s.peers() {
			if !h.registered && h.start <= s.now {
				s.register(h, false)
			}
		}
		if s.now >= nextRound {
			nextRound += rescheduleEvery
			s.round()
		}
		if s.now >= nextGC {
			nextGC += gcEvery
			s.timed(func() { s.store.GC(s.t(), s.gcPol) })
		}
		s.announceHosts()
		s.expire()
		s.stretch()
		s.reveal()
		s.startTransfers()
		if s.now >= nextSample {
			nextSample += 10
			s.sample()
		}
		s.share()
		s.now += dt
		s.advance(dt)
		left := 0
		for _, h := range s.peers() {
			if !h.done && !h.failed {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		if s.now > s.cfg.MaxTime.Seconds() {
			return fmt.Errorf("%w: %d of %d after %v simulated", ErrUnfinished, left, s.cfg.Peers, s.cfg.MaxTime)
		}
	}
}

func (s *sim) sample() {
	smp := Sample{T: math.Round(s.now*10) / 10, Rate: (s.received - s.lastBytes) / 10, Flows: len(s.flows)}
	for _, f := range s.flows {
		if f.from == s.origin {
			smp.Origin++
		}
	}
	s.lastBytes = s.received
	running, parents := 0, 0
	for _, h := range s.peers() {
		switch {
		case h.done:
			smp.Done++
		case h.registered && !h.failed && len(h.parents) == 0 && !h.source:
			smp.Waiting++
		case h.registered && !h.failed:
			running++
			parents += len(h.parents)
		}
		if h.nHave > 0 {
			smp.Holders++
		}
	}
	if running > 0 {
		smp.Parents = float64(parents) / float64(running)
	}
	s.trace = append(s.trace, smp)
}

// Bound is the Kumar–Ross bound max(F/u_s, F/d, N·F/(u_s+N·u)) in seconds.
func (c Config) Bound() float64 {
	f, n := float64(c.Size), float64(c.Peers)
	return max(f/float64(c.OriginUp), f/float64(c.Down), n*f/(float64(c.OriginUp)+n*float64(c.Up)))
}

func (s *sim) result() Result {
	r := Result{Peers: s.cfg.Peers, Size: s.cfg.Size, PieceLength: s.cfg.PieceLength, Pieces: s.layout.PieceCount(),
		OriginBytes: int64(math.Round(s.originBytes)), Decisions: s.dec, Busy: s.busy, Stretched: s.stretched, Trace: s.trace, SchedulerCPU: s.cpu, Bound: s.cfg.Bound()}
	r.OriginRatio = float64(r.OriginBytes) / float64(s.cfg.Size)
	var times, ups []float64
	for _, h := range s.peers() {
		if h.failed {
			r.Failed++
		}
		if h.done {
			times = append(times, h.doneAt-h.start)
		}
		ups = append(ups, h.sent)
	}
	if s.cfg.Seed {
		r.SeedUploadRatio = s.hosts[len(s.hosts)-1].sent / float64(s.cfg.Size)
	}
	if len(times) > 0 {
		slices.Sort(times)
		r.P50, r.P99, r.Last = times[len(times)/2], times[len(times)*99/100], times[len(times)-1]
		r.Efficiency = r.Bound / r.Last
	}
	slices.Sort(ups)
	mean := 0.0
	for _, u := range ups {
		mean += u
	}
	mean /= float64(len(ups))
	if mean > 0 {
		r.UploadMaxOverMean = ups[len(ups)-1] / mean
		r.UploadP99OverMean = ups[len(ups)*99/100] / mean
	}
	if s.calls > 0 {
		r.PerDecision = s.cpu / time.Duration(s.calls)
	}
	return r
}
