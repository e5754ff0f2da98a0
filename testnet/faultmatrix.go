package testnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/node/upload"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/units"
	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/testnet/shape"
)

// FaultScenario is one row of the fault matrix as data
// (testnet/scenarios/faults/*.yaml): a swarm download with a timeline of
// faults, and the assertions every fault run makes:
//
//   - every host that was not killed and is not expected to fail ends with
//     the origin's bytes, both as delivered to the caller and as stored on
//     its disk (sha256 of the stored pieces);
//   - nothing unverified was served: every piece an honest host uploads is
//     hashed on its way out and must match its verified digest (a tap on
//     the upload store), and when a lying peer is present its bad pieces
//     are rejected by the receivers (counted, at least one);
//   - a host restarted mid-download resumes from the pieces it stored (it
//     fetches at most the rest, plus the pieces in flight);
//   - a host whose disk fills fails that download with ENOSPC, clearly;
//   - origin bytes stay within expect.max-origin-ratio.
type FaultScenario struct {
	Name        string         `yaml:"name"`
	Description string         `yaml:"description"`
	Hosts       int            `yaml:"hosts"`
	Size        units.ByteSize `yaml:"size"`
	PieceLength units.ByteSize `yaml:"piece-length"`
	Up          Bandwidth      `yaml:"up"`
	Down        Bandwidth      `yaml:"down"`
	OriginUp    Bandwidth      `yaml:"origin-up"`
	Latency     time.Duration  `yaml:"latency"`
	Schedulers  int            `yaml:"schedulers"`
	// Manager starts a manager first: the schedulers register with it and
	// the nodes take their scheduler ring from it (none is configured
	// statically).
	Manager bool `yaml:"manager"`
	// Stagger starts host i's download i × Stagger after the first.
	Stagger time.Duration `yaml:"stagger"`
	Events  []FaultEvent  `yaml:"events"`
	Expect  struct {
		MaxOriginRatio float64 `yaml:"max-origin-ratio"`
	} `yaml:"expect"`
}

// FaultEvent is one timeline action of a fault scenario.
type FaultEvent struct {
	At time.Duration `yaml:"at"`
	// Action is one of FaultActions.
	Action string `yaml:"action"`
	Host   int    `yaml:"host"`
	// Hosts is the group a partition cuts off from the other hosts (the
	// schedulers and the origin stay reachable from both sides).
	Hosts []int `yaml:"hosts"`
	// Up and Down are the new rates for slow.
	Up   Bandwidth `yaml:"up"`
	Down Bandwidth `yaml:"down"`
	// Quota is the disk size for disk-full (a tmpfs of that size; root only).
	Quota units.ByteSize `yaml:"quota"`
}

// FaultActions are the timeline actions of a fault scenario:
//
//	kill             stop host (its download is not counted)
//	kill-parent      stop whichever live host has uploaded the most so far:
//	                 a parent in the middle of sending pieces
//	restart          stop host and start it again on the same data directory
//	slow             set host's link to up/down
//	corrupt          host serves every piece with a flipped byte while
//	                 announcing the right digests (from the start; at: ignored)
//	disk-full        host's data directory is a tmpfs of quota bytes (from the
//	                 start; at: ignored): its download must fail with ENOSPC
//	kill-owner       stop the scheduler that owns the task
//	schedulers-down  stop every scheduler
//	partition        cut hosts off from the other hosts
//	heal             undo the partition
//	manager-down     stop the manager (manager: true)
var FaultActions = []string{"kill", "kill-parent", "restart", "slow", "corrupt", "disk-full", "kill-owner", "schedulers-down", "partition", "heal", "manager-down"}

// ErrFaultCheck: a fault run's assertion failed.
var ErrFaultCheck = errors.New("fault matrix assertion failed")

// LoadFaultScenario reads a fault scenario (strict: unknown keys are errors).
func LoadFaultScenario(path string) (FaultScenario, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return FaultScenario{}, err
	}
	var s FaultScenario
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Validate reports every problem at once.
func (s FaultScenario) Validate() error {
	var errs []error
	if s.Hosts < 2 || s.Hosts > 64 {
		errs = append(errs, fmt.Errorf("hosts: %d, want 2..64", s.Hosts))
	}
	if s.Size < 1 || s.Size > units.GiB {
		errs = append(errs, fmt.Errorf("size: %v, want 1B..1GiB", s.Size))
	}
	if s.Schedulers < 0 || s.Schedulers > 8 {
		errs = append(errs, fmt.Errorf("schedulers: %d, want 0..8", s.Schedulers))
	}
	if s.Manager && s.Schedulers == 0 {
		errs = append(errs, errors.New("manager: true needs schedulers (they register with the manager)"))
	}
	if s.Latency < 0 || s.Latency > 10*time.Second || s.Stagger < 0 || s.Stagger > time.Minute {
		errs = append(errs, errors.New("latency must be within 0..10s and stagger within 0..1m"))
	}
	var group []int
	for i, e := range s.Events {
		if !slices.Contains(FaultActions, e.Action) {
			errs = append(errs, fmt.Errorf("events[%d]: unknown action %q (%s)", i, e.Action, strings.Join(FaultActions, ", ")))
		}
		if e.Host < 0 || e.Host >= s.Hosts {
			errs = append(errs, fmt.Errorf("events[%d]: host %d, want 0..%d", i, e.Host, s.Hosts-1))
		}
		if e.At < 0 || e.At > time.Hour {
			errs = append(errs, fmt.Errorf("events[%d]: at %v, want 0..1h", i, e.At))
		}
		switch e.Action {
		case "kill-owner", "schedulers-down":
			if s.Schedulers == 0 {
				errs = append(errs, fmt.Errorf("events[%d]: %s needs schedulers", i, e.Action))
			}
		case "manager-down":
			if !s.Manager {
				errs = append(errs, fmt.Errorf("events[%d]: manager-down needs manager: true", i))
			}
		case "disk-full":
			if e.Quota <= 0 || e.Quota >= s.Size {
				errs = append(errs, fmt.Errorf("events[%d]: disk-full quota %v, want 1B up to the size", i, e.Quota))
			}
		case "partition":
			if len(e.Hosts) == 0 || len(e.Hosts) >= s.Hosts {
				errs = append(errs, fmt.Errorf("events[%d]: partition hosts %v: name some hosts, not all", i, e.Hosts))
			}
			for _, h := range e.Hosts {
				if h < 0 || h >= s.Hosts {
					errs = append(errs, fmt.Errorf("events[%d]: partition host %d, want 0..%d", i, h, s.Hosts-1))
				}
			}
			if group != nil && !slices.Equal(group, e.Hosts) {
				errs = append(errs, fmt.Errorf("events[%d]: one partition group per scenario", i))
			}
			group = e.Hosts
		}
	}
	return errors.Join(errs...)
}

// HostOutcome is what happened to one host of a fault run.
type HostOutcome struct {
	Host int `json:"host"`
	// Status: completed, killed, failed (expected: disk-full), error.
	Status   string        `json:"status"`
	Duration time.Duration `json:"duration_ns"`
	// FromPeers and FromSource are the last attempt's bytes.
	FromPeers  int64 `json:"from_peers"`
	FromSource int64 `json:"from_source"`
	// KeptPieces are the verified pieces found in the store after a restart.
	KeptPieces int    `json:"kept_pieces,omitempty"`
	Error      string `json:"error,omitempty"`
}

// FaultResult is a fault run's report.
type FaultResult struct {
	Name        string        `json:"name"`
	Hosts       []HostOutcome `json:"hosts"`
	OriginRatio float64       `json:"origin_ratio"`
	// Rejected counts parents receivers dropped for sending a piece that
	// did not match its digest (a lying peer's work, caught).
	Rejected int64 `json:"rejected"`
	// Served and UnverifiedServed count pieces honest hosts uploaded, and
	// those whose bytes did not match their verified digest (must be 0).
	Served           int64         `json:"served"`
	UnverifiedServed int64         `json:"unverified_served"`
	Elapsed          time.Duration `json:"elapsed_ns"`
	// Failures are the assertions that did not hold.
	Failures []string `json:"failures,omitempty"`
}

// Err returns ErrFaultCheck with the failures, or nil.
func (r FaultResult) Err() error {
	if len(r.Failures) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: %s", ErrFaultCheck, r.Name, strings.Join(r.Failures, "; "))
}

// faultRun is the state of one run.
type faultRun struct {
	sc      FaultScenario
	log     *slog.Logger
	c       *Cluster
	links   []*shape.Link
	fabric  *shape.Fabric
	taskID  atomic.Pointer[protocol.TaskID]
	served  atomic.Int64
	badOut  atomic.Int64
	regMu   sync.Mutex
	regs    [][]*prometheus.Registry // per host, one per start
	corrupt map[int]bool
	ev      *eventState
	kept    []atomic.Int64 // pieces found after a restart, per host
	mgr     *Manager
}

// startManaged starts a manager, schedulers registered with it, and nodes
// that know only the manager, and waits until every node has the whole
// ring from it.
func (r *faultRun) startManaged(ctx context.Context, dir string, opts []Option) (*Cluster, error) {
	c, err := Start(ctx, dir, 0, opts...)
	if err != nil {
		return nil, err
	}
	m, err := c.StartManager(ctx)
	if err != nil {
		return c, fmt.Errorf("manager: %w", err)
	}
	r.mgr = m
	if err := m.Do(ctx, "POST", "/api/v1/clusters", map[string]any{"name": "faults", "default": true}, nil); err != nil {
		return c, fmt.Errorf("manager: create cluster: %w", err)
	}
	tok, err := m.ClusterToken(ctx, "faults")
	if err != nil {
		return c, fmt.Errorf("manager: token: %w", err)
	}
	c.UseManager(m.URL(), tok)
	for range r.sc.Schedulers {
		if _, err := c.AddManagedScheduler(ctx, "faults"); err != nil {
			return c, fmt.Errorf("managed scheduler: %w", err)
		}
	}
	for range r.sc.Hosts {
		if _, err := c.AddNode(ctx); err != nil {
			return c, err
		}
	}
	err = WaitFor(ctx, 50*time.Millisecond, func() bool {
		for _, nd := range c.Nodes() {
			if len(nd.Schedulers()) != r.sc.Schedulers {
				return false
			}
		}
		return true
	})
	if err != nil {
		return c, fmt.Errorf("nodes did not take the ring from the manager: %w", err)
	}
	return c, nil
}

// RunFaultScenario runs one fault scenario in dir and checks it. The
// returned error is about the run itself; the assertions are in
// FaultResult.Failures (see Err).
func RunFaultScenario(ctx context.Context, dir string, sc FaultScenario, log *slog.Logger) (FaultResult, error) {
	if err := sc.Validate(); err != nil {
		return FaultResult{}, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := FaultResult{Name: sc.Name}
	data := Payload(int(sc.Size), uint64(sc.Size)^0xfa17)
	want := sha256.Sum256(data)
	origin, err := NewShapedOrigin(shape.NewLink(shape.Spec{Up: int64(sc.OriginUp), Latency: sc.Latency}))
	if err != nil {
		return res, err
	}
	defer origin.Close()
	origin.Put("/faults.bin", data, `"faults"`)
	url := origin.URL("/faults.bin")

	r := &faultRun{sc: sc, log: log, corrupt: map[int]bool{}, regs: make([][]*prometheus.Registry, sc.Hosts),
		ev: newEventState(sc.Hosts), kept: make([]atomic.Int64, sc.Hosts)}
	diskFull := map[int]bool{}
	cut := map[int]bool{}
	for _, e := range sc.Events {
		switch e.Action {
		case "corrupt":
			r.corrupt[e.Host] = true
		case "disk-full":
			diskFull[e.Host] = true
			unmount, err := smallDisk(filepath.Join(dir, fmt.Sprintf("node%02d", e.Host)), int64(e.Quota))
			if err != nil {
				return res, fmt.Errorf("disk-full on host %d: %w", e.Host, err)
			}
			defer unmount()
		case "partition":
			for _, h := range e.Hosts {
				cut[h] = true
			}
		}
	}
	r.fabric = shape.NewFabric(2, 0)
	r.links = make([]*shape.Link, sc.Hosts)
	for i := range r.links {
		r.links[i] = shape.NewLink(shape.Spec{Up: int64(sc.Up), Down: int64(sc.Down), Latency: sc.Latency})
		group := 0
		if cut[i] {
			group = 1
		}
		r.links[i].Join(r.fabric, group)
	}
	opts := []Option{WithLogger(log), WithLinks(func(i int) *shape.Link { return r.links[i] }),
		WithNodeOptions(r.nodeOptions),
		WithConfig(func(i int, cfg *node.Config) {
			if sc.Up > 0 {
				cfg.Host.UploadCapacity.Set(fmt.Sprint(int64(sc.Up)))
			}
		})}
	var c *Cluster
	if sc.Manager {
		c, err = r.startManaged(ctx, dir, opts)
		if r.mgr != nil {
			defer r.mgr.Stop()
		}
	} else {
		c, err = Start(ctx, dir, sc.Hosts, append(opts, WithSchedulers(sc.Schedulers))...)
	}
	if c != nil {
		defer c.Close()
	}
	if err != nil {
		return res, err
	}
	r.c = c
	if err := c.WaitConnected(ctx, min(sc.Hosts-1, 8)); err != nil {
		return res, err
	}

	t0 := time.Now()
	outcomes := make([]HostOutcome, sc.Hosts)
	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	go r.events(evCtx)
	var wg sync.WaitGroup
	for i := range sc.Hosts {
		wg.Go(func() {
			out := &outcomes[i]
			out.Host = i
			select {
			case <-time.After(time.Duration(i) * sc.Stagger):
			case <-ctx.Done():
				out.Status, out.Error = "error", ctx.Err().Error()
				return
			}
			start := time.Now()
			for {
				st, err := r.fetch(ctx, i, url, sc.PieceLength, want)
				out.FromPeers, out.FromSource = st.BytesFromPeers, st.BytesFromSource
				if err == nil {
					out.Status, out.Duration = "completed", time.Since(start)
					return
				}
				switch r.ev.wait(ctx, i) {
				case hostKilled:
					out.Status = "killed"
					return
				case hostRestarted:
					out.KeptPieces = int(r.kept[i].Load())
					continue
				}
				out.Status, out.Error, out.Duration = "failed", err.Error(), time.Since(start)
				if !diskFull[i] || !errors.Is(err, syscall.ENOSPC) && !strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
					out.Status = "error"
				}
				return
			}
		})
	}
	wg.Wait()
	stopEvents()
	res.Elapsed = time.Since(t0)
	res.Hosts = outcomes
	res.OriginRatio = float64(origin.BytesServed()) / float64(sc.Size)
	res.Served, res.UnverifiedServed = r.served.Load(), r.badOut.Load()
	res.Rejected = r.rejected()
	res.Failures = r.check(ctx, res, diskFull, want)
	return res, nil
}

// nodeOptions gives every start of host i a fresh metrics registry (kept
// for the end of the run), the upload tap, and the lie when it is the
// corrupt host.
func (r *faultRun) nodeOptions(i int) []node.Option {
	reg := prometheus.NewRegistry()
	r.regMu.Lock()
	r.regs[i] = append(r.regs[i], reg)
	r.regMu.Unlock()
	lie := r.corrupt[i]
	return []node.Option{node.WithRegisterer(reg), node.WithUploadStore(func(s upload.Store) upload.Store {
		tapped := tapStore{Store: s, served: &r.served, bad: &r.badOut}
		if lie {
			return Corrupt(tapped)
		}
		return tapped
	})}
}

func (r *faultRun) fetch(ctx context.Context, i int, url string, pieceLength units.ByteSize, want [32]byte) (download.Stats, error) {
	req := api.DownloadRequest{URL: url, PieceLength: uint32(pieceLength)}
	if dr, err := node.DownloadRequest(req); err == nil {
		id := dr.ID
		r.taskID.CompareAndSwap(nil, &id)
	}
	cont, err := r.c.Node(i).Download(ctx, req)
	var st download.Stats
	got, err := FetchDigest(ctx, cont, err)
	if j, ok := cont.(*download.Job); ok {
		st = j.Stats()
	}
	if err != nil {
		return st, err
	}
	if got != want {
		return st, errors.New("content differs from the origin's")
	}
	return st, nil
}

// events applies the timeline.
func (r *faultRun) events(ctx context.Context) {
	start := time.Now()
	events := slices.Clone(r.sc.Events)
	slices.SortStableFunc(events, func(a, b FaultEvent) int { return int(a.At - b.At) })
	for _, ev := range events {
		select {
		case <-time.After(time.Until(start.Add(ev.At))):
		case <-ctx.Done():
			return
		}
		r.log.Info("fault", "action", ev.Action, "host", ev.Host, "at", ev.At)
		switch ev.Action {
		case "kill":
			r.ev.set(ev.Host, hostKilled)
			_ = r.c.Node(ev.Host).Stop()
		case "kill-parent":
			h := r.busiestUploader()
			r.log.Info("killing the busiest parent", "host", h)
			r.ev.set(h, hostKilled)
			_ = r.c.Node(h).Stop()
		case "restart":
			r.ev.set(ev.Host, hostRestarted)
			nd, err := r.c.Restart(ctx, ev.Host)
			if err != nil {
				r.log.Warn("restart failed", "host", ev.Host, "err", err)
				continue
			}
			if id := r.taskID.Load(); id != nil {
				if info, err := nd.Store().Stat(ctx, *id); err == nil {
					r.kept[ev.Host].Store(int64(info.VerifiedPieces))
				}
			}
			close(r.ev.restarted[ev.Host])
		case "slow":
			r.links[ev.Host].Set(shape.Spec{Up: int64(ev.Up), Down: int64(ev.Down), Latency: r.sc.Latency})
		case "kill-owner":
			id := r.taskID.Load()
			for _, s := range r.c.Schedulers() {
				if id != nil && s.Knows(*id) {
					r.log.Info("killing the task's owner scheduler", "scheduler", s.Name)
					_ = s.Stop()
				}
			}
		case "schedulers-down":
			for _, s := range r.c.Schedulers() {
				_ = s.Stop()
			}
		case "partition":
			r.fabric.Partition(0, 1, true)
		case "heal":
			r.fabric.Partition(0, 1, false)
		case "manager-down":
			if r.mgr != nil {
				_ = r.mgr.Stop()
			}
		}
	}
}

// busiestUploader is the live host whose link sent the most.
func (r *faultRun) busiestUploader() int {
	best, most := 0, int64(-1)
	killed := r.ev.killed()
	for i, l := range r.links {
		sent, _, _ := l.Stats()
		if sent > most && !slices.Contains(killed, i) {
			best, most = i, sent
		}
	}
	return best
}

// rejected sums the parents dropped for lying over every node's starts.
func (r *faultRun) rejected() int64 {
	r.regMu.Lock()
	defer r.regMu.Unlock()
	var n float64
	for _, regs := range r.regs {
		for _, reg := range regs {
			mfs, err := reg.Gather()
			if err != nil {
				continue
			}
			for _, mf := range mfs {
				if mf.GetName() != "dragonfly_dfnode_download_parent_drops_total" {
					continue
				}
				for _, m := range mf.GetMetric() {
					for _, lp := range m.GetLabel() {
						if lp.GetName() == "reason" && lp.GetValue() == "lied" {
							n += m.GetCounter().GetValue()
						}
					}
				}
			}
		}
	}
	return int64(n)
}

// check applies the fault matrix's assertions.
func (r *faultRun) check(ctx context.Context, res FaultResult, diskFull map[int]bool, want [32]byte) []string {
	var fails []string
	failf := func(format string, a ...any) { fails = append(fails, fmt.Sprintf(format, a...)) }
	id := r.taskID.Load()
	pieceLen := int64(r.sc.PieceLength)
	if pieceLen == 0 {
		pieceLen = int64(protocol.AutoPieceLength(int64(r.sc.Size)))
	}
	restarted := map[int]bool{}
	for _, e := range r.sc.Events {
		if e.Action == "restart" {
			restarted[e.Host] = true
		}
	}
	for _, o := range res.Hosts {
		switch {
		case o.Status == "killed":
			continue
		case diskFull[o.Host]:
			if o.Status != "failed" {
				failf("host %d (disk full) ended %s, want a failed download naming ENOSPC (%s)", o.Host, o.Status, o.Error)
			}
			continue
		case o.Status != "completed":
			failf("host %d: %s: %s", o.Host, o.Status, o.Error)
			continue
		}
		if id == nil {
			failf("no task ID recorded")
			continue
		}
		if err := storedDigest(ctx, r.c.Node(o.Host), *id, want); err != nil {
			failf("host %d: stored copy: %v", o.Host, err)
		}
		if restarted[o.Host] {
			// It fetched only what it had not stored, plus pieces that were
			// in flight or raced between parents and the origin.
			limit := int64(r.sc.Size) - int64(o.KeptPieces)*pieceLen + 8*pieceLen
			if o.KeptPieces == 0 {
				failf("host %d: restarted with no stored piece (restart came too late or the store lost them)", o.Host)
			} else if got := o.FromPeers + o.FromSource; got > limit {
				failf("host %d: after a restart with %d pieces kept it fetched %d bytes, more than the %d left", o.Host, o.KeptPieces, got, limit)
			}
		}
	}
	if res.UnverifiedServed > 0 {
		failf("honest hosts served %d pieces that did not match their digest", res.UnverifiedServed)
	}
	if r.sc.Manager && id != nil {
		known := false
		for _, s := range r.c.Schedulers() {
			known = known || s.Knows(*id)
		}
		if !known {
			failf("no scheduler the manager announced knows the task: the downloads did not go through the manager's ring")
		}
	}
	if len(r.corrupt) > 0 && res.Rejected == 0 {
		failf("a lying peer was present but no receiver rejected a piece from it")
	}
	if m := r.sc.Expect.MaxOriginRatio; m > 0 && res.OriginRatio > m {
		failf("origin served %.3f × the size, expected ≤ %.3f", res.OriginRatio, m)
	}
	return fails
}

// storedDigest hashes the host's stored pieces of id.
func storedDigest(ctx context.Context, n *Node, id protocol.TaskID, want [32]byte) error {
	t, err := n.Store().Open(ctx, id)
	if err != nil {
		return err
	}
	defer t.Close()
	info := t.Info()
	if !info.Complete {
		return errors.New("not marked complete")
	}
	h := sha256.New()
	for p := range info.Layout.PieceCount() {
		rd, _, err := t.Piece(p)
		if err != nil {
			return fmt.Errorf("piece %d: %w", p, err)
		}
		if _, err := io.Copy(h, rd); err != nil {
			return fmt.Errorf("piece %d: %w", p, err)
		}
		if c, ok := rd.(io.Closer); ok {
			c.Close()
		}
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		return errors.New("sha256 differs from the origin's")
	}
	return nil
}

// tapStore hashes every piece an upload service sends and counts those
// that do not match the digest the store verified.
type tapStore struct {
	upload.Store
	served, bad *atomic.Int64
}

func (s tapStore) Open(ctx context.Context, id protocol.TaskID) (storage.Task, error) {
	t, err := s.Store.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	return tapTask{Task: t, s: s}, nil
}

type tapTask struct {
	storage.Task
	s tapStore
}

func (t tapTask) Piece(n uint32) (io.Reader, protocol.PieceInfo, error) {
	rd, info, err := t.Task.Piece(n)
	if err != nil {
		return rd, info, err
	}
	_, length, lerr := t.Task.Info().Layout.Piece(n)
	if lerr != nil {
		return rd, info, err
	}
	return &tapReader{r: rd, h: sha256.New(), left: int64(length), info: info, s: t.s}, info, nil
}

// tapReader checks the digest when the piece's last byte has been read.
type tapReader struct {
	r    io.Reader
	h    hash.Hash
	left int64
	info protocol.PieceInfo
	s    tapStore
	done bool
}

func (t *tapReader) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	if n > 0 && !t.done {
		t.h.Write(b[:n])
		t.left -= int64(n)
		if t.left <= 0 {
			t.done = true
			t.s.served.Add(1)
			if !bytes.Equal(t.h.Sum(nil), t.info.Digest[:]) {
				t.s.bad.Add(1)
			}
		}
	}
	return n, err
}

func (t *tapReader) Close() error {
	if c, ok := t.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// smallDisk mounts a tmpfs of size bytes on dir (created): a disk that
// fills up. It needs root.
func smallDisk(dir string, size int64) (func(), error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root to mount a small tmpfs")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		return nil, fmt.Errorf("mount tmpfs: %w", err)
	}
	return func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) }, nil
}
