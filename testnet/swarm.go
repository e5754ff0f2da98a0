package testnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/testnet/shape"
)

// SwarmSpec is a swarm download: one origin, Nodes hosts with shaped links,
// all fetching the same file.
type SwarmSpec struct {
	Nodes       int
	Size        int64
	PieceLength uint32
	// Up and Down shape every node's link, OriginUp the origin's uplink
	// (bytes per second).
	Up, Down, OriginUp int64
	Latency            time.Duration
	Loss               float64
	// Events are applied during the run (kill, restart, slow, corrupt).
	Events []Event
	// Schedulers (0: DHT only) and Seed (node 0 is a seed peer).
	Schedulers int
	Seed       bool
	// MaxUploads bounds each node's concurrent piece uploads (0: the default).
	MaxUploads int
	// Stagger starts node i's download i × Stagger after the first.
	Stagger time.Duration
	// NoP2P is the baseline: every host fetches the file from the origin
	// over HTTP, through the same shaped links, without dragonfly.
	NoP2P bool
	// IDCs splits the hosts into that many data centres (0 or 1: one);
	// InterIDC is the rate of the shared link between two of them, per
	// direction (bytes per second, 0: unlimited).
	IDCs     int
	InterIDC int64
	// Backend is "" or "inprocess" (RunSwarm's nodes in this process) or
	// "netns" (dfnode processes from BinDir, one per network namespace).
	Backend string
	BinDir  string
	Log     *slog.Logger
}

// SwarmResult is what a swarm run measured.
type SwarmResult struct {
	Spec SwarmSpec `json:"-"`
	// Completion is each host's time from its own start to verified content.
	Completion []time.Duration `json:"completion_ns"`
	P50        time.Duration   `json:"p50_ns"`
	P99        time.Duration   `json:"p99_ns"`
	Last       time.Duration   `json:"last_ns"`
	// Bound is the Kumar–Ross lower bound max(F/u_s, F/d_min, N·F/(u_s+Σu_i)).
	Bound time.Duration `json:"bound_ns"`
	// Efficiency is Bound / Last (for staggered runs: Bound / the slowest host's own time).
	Efficiency  float64 `json:"efficiency"`
	OriginBytes int64   `json:"origin_bytes"`
	OriginRatio float64 `json:"origin_ratio"`
	// Killed hosts are left out of the completion figures.
	Killed []int `json:"killed,omitempty"`
	// Uploaded is the bytes each host's link sent (P2P uploads, ACKs).
	Uploaded []int64 `json:"uploaded_bytes"`
	// UplinkUse is, for each second of the run, the bytes all hosts sent
	// divided by what their uplinks could carry (0–1): how much of the
	// swarm's upload capacity was put to work.
	UplinkUse []float64 `json:"uplink_use,omitempty"`
	// Hosts is each host's link and upload queue, second by second
	// (in-process back end): where a swarm loses time, host by host.
	Hosts []HostSeries `json:"hosts,omitempty"`
	// CPU is the process's user+system CPU time during the run.
	CPU     time.Duration `json:"cpu_ns"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Traffic is the bytes hosts sent each other, inside and across IDCs.
	Traffic *Traffic `json:"traffic,omitempty"`
	// Backend is the back end that ran (inprocess or netns).
	Backend string `json:"backend"`
	// Notes are what the back end could not apply (e.g. latency in netns).
	Notes []string `json:"notes,omitempty"`
}

// Bound returns the Kumar–Ross bound of a swarm.
func (s SwarmSpec) Bound() time.Duration {
	f := float64(s.Size)
	secs := 0.0
	if s.OriginUp > 0 {
		secs = max(secs, f/float64(s.OriginUp))
		switch {
		case s.NoP2P:
			secs = max(secs, float64(s.Nodes)*f/float64(s.OriginUp))
		case s.Up > 0:
			secs = max(secs, float64(s.Nodes)*f/float64(s.OriginUp+int64(s.Nodes)*s.Up))
		}
	}
	if s.Down > 0 {
		secs = max(secs, f/float64(s.Down))
	}
	return time.Duration(secs * float64(time.Second))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RunSwarm runs one swarm download in dir and measures it.
func RunSwarm(ctx context.Context, dir string, spec SwarmSpec) (SwarmResult, error) {
	if spec.Nodes < 1 || spec.Size < 1 {
		return SwarmResult{}, errors.New("swarm: nodes and size must be positive")
	}
	if spec.Log == nil {
		spec.Log = slog.New(slog.DiscardHandler)
	}
	if spec.Backend == BackendNetns {
		return runNetnsSwarm(ctx, dir, spec)
	}
	res := SwarmResult{Spec: spec, Bound: spec.Bound(), Backend: BackendInProcess}
	data := Payload(int(spec.Size), uint64(spec.Size))
	want := sha256.Sum256(data)
	origin, err := NewShapedOrigin(shape.NewLink(shape.Spec{Up: spec.OriginUp, Latency: spec.Latency}))
	if err != nil {
		return res, err
	}
	defer origin.Close()
	origin.Put("/swarm.bin", data, `"swarm"`)
	url := origin.URL("/swarm.bin")

	fabric := shape.NewFabric(spec.groups(), spec.InterIDC)
	links := make([]*shape.Link, spec.Nodes)
	for i := range links {
		links[i] = shape.NewLink(shape.Spec{Up: spec.Up, Down: spec.Down, Latency: spec.Latency, Loss: spec.Loss})
		links[i].Join(fabric, spec.IDCOf(i))
	}
	corrupt := map[int]bool{}
	for _, e := range spec.Events {
		if e.Action == "corrupt" {
			corrupt[e.Host] = true
		}
	}
	var fetch func(ctx context.Context, i int) error
	var cluster *Cluster
	if spec.NoP2P {
		fetch = func(ctx context.Context, i int) error { return httpFetch(ctx, links[i], url, want) }
	} else {
		n := spec.Nodes
		if spec.Seed {
			n++ // node 0 is the seed; hosts are 1..Nodes
		}
		c, err := Start(ctx, dir, n, WithLogger(spec.Log), WithSchedulers(spec.Schedulers),
			WithLinks(func(i int) *shape.Link {
				if spec.Seed {
					if i == 0 {
						l := shape.NewLink(shape.Spec{Up: spec.Up, Down: spec.Down, Latency: spec.Latency})
						l.Join(fabric, 0)
						return l
					}
					return links[i-1]
				}
				return links[i]
			}),
			WithNodeOptions(func(i int) []node.Option {
				if spec.Seed {
					i--
				}
				if corrupt[i] {
					// a lying peer: it announces the right digests and
					// serves every piece with a flipped byte
					return []node.Option{node.WithUploadStore(Corrupt)}
				}
				return nil
			}),
			WithConfig(func(i int, cfg *node.Config) {
				cfg.Seed = spec.Seed && i == 0
				if spec.IDCs > 1 {
					h := i
					if spec.Seed {
						h = max(i-1, 0)
					}
					cfg.Host.IDC = IDCName(spec.IDCOf(h))
				}
				cfg.Host.UploadCapacity.Set(fmt.Sprint(spec.Up))
				if spec.MaxUploads > 0 {
					cfg.Limits.MaxUploads = spec.MaxUploads
				}
			}))
		if err != nil {
			return res, err
		}
		defer c.Close()
		cluster = c
		if err := c.WaitConnected(ctx, min(n-1, 8)); err != nil {
			return res, err
		}
		fetch = func(ctx context.Context, i int) error {
			if spec.Seed {
				i++
			}
			cont, err := c.Node(i).Download(ctx, api.DownloadRequest{URL: url, PieceLength: spec.PieceLength})
			got, err := FetchDigest(ctx, cont, err)
			if err != nil {
				return err
			}
			if got != want {
				return errors.New("content differs")
			}
			return nil
		}
	}

	cpu0, t0 := cpuTime(), time.Now()
	res.Completion = make([]time.Duration, spec.Nodes)
	errs := make([]error, spec.Nodes)
	ev := newEventState(spec.Nodes)
	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	go ev.run(evCtx, spec, links, cluster)
	var queue uploadQueue
	if cluster != nil {
		queue = func(i int) (int, int, bool) {
			if spec.Seed {
				i++ // node 0 is the seed
			}
			nodes := cluster.Nodes()
			if i >= len(nodes) {
				return 0, 0, false
			}
			u, w := nodes[i].UploadQueue()
			return u, w, true
		}
	}
	sampled := make(chan []HostSeries, 1)
	go func() { sampled <- sampleLinks(evCtx, links, spec, queue) }()
	var wg sync.WaitGroup
	for i := range spec.Nodes {
		wg.Go(func() {
			select {
			case <-time.After(time.Duration(i) * spec.Stagger):
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			start := time.Now()
			for {
				err := fetch(ctx, i)
				if err == nil {
					break
				}
				switch ev.wait(ctx, i) {
				case hostKilled:
					return
				case hostRestarted:
					continue // resume on the restarted node
				}
				errs[i] = fmt.Errorf("host %d: %w", i, err)
				return
			}
			res.Completion[i] = time.Since(start)
		})
	}
	wg.Wait()
	stopEvents()
	res.Hosts = <-sampled
	if !spec.NoP2P {
		res.UplinkUse = uplinkUse(res.Hosts)
	}
	res.Killed = ev.killed()
	res.Elapsed, res.CPU = time.Since(t0), cpuTime()-cpu0
	for _, l := range links {
		sent, _, _ := l.Stats()
		res.Uploaded = append(res.Uploaded, sent)
	}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	var sorted []time.Duration
	for i, d := range res.Completion {
		if !slices.Contains(res.Killed, i) {
			sorted = append(sorted, d)
		}
	}
	if len(sorted) == 0 {
		return res, errors.New("swarm: every host was killed")
	}
	slices.Sort(sorted)
	res.P50, res.P99, res.Last = sorted[len(sorted)/2], sorted[(len(sorted)*99)/100], sorted[len(sorted)-1]
	res.OriginBytes = origin.BytesServed()
	res.OriginRatio = float64(res.OriginBytes) / float64(spec.Size)
	if !spec.NoP2P {
		res.Traffic = fabricTraffic(spec, fabric)
	}
	res.Efficiency = float64(res.Bound) / float64(res.Last)
	return res, nil
}

// HostSeries is one host's link and upload queue, one value per second of
// a run.
type HostSeries struct {
	// Up and Down are the bytes the host's link sent and received in each
	// second, as a share of the link's rate (0–1, on the wire: QUIC headers
	// and ACKs included); empty when that direction is not limited.
	Up   []float64 `json:"up,omitempty"`
	Down []float64 `json:"down,omitempty"`
	// Uploads and Waiting are, at the end of each second, the pieces the
	// host was uploading and the piece requests waiting for an upload slot
	// (P2P runs only).
	Uploads []int `json:"uploads,omitempty"`
	Waiting []int `json:"waiting,omitempty"`
}

// uploadQueue reports host i's pieces being uploaded and requests waiting
// (ok false: no node for it).
type uploadQueue func(i int) (uploading, waiting int, ok bool)

// sampleLinks records each host's series, every second until ctx ends.
func sampleLinks(ctx context.Context, links []*shape.Link, spec SwarmSpec, queue uploadQueue) []HostSeries {
	hosts := make([]HostSeries, len(links))
	type count struct{ sent, received int64 }
	read := func() []count {
		c := make([]count, len(links))
		for i, l := range links {
			c[i].sent, c[i].received, _ = l.Stats()
		}
		return c
	}
	share := func(n int64, rate int64) float64 { return float64(n) / float64(rate) }
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev := read()
	for {
		select {
		case <-ctx.Done():
			return hosts
		case <-tick.C:
		}
		now := read()
		for i := range links {
			up, down := now[i].sent-prev[i].sent, now[i].received-prev[i].received
			h := &hosts[i]
			if spec.Up > 0 {
				h.Up = append(h.Up, share(up, spec.Up))
			}
			if spec.Down > 0 {
				h.Down = append(h.Down, share(down, spec.Down))
			}
			if queue != nil {
				if u, w, ok := queue(i); ok {
					h.Uploads, h.Waiting = append(h.Uploads, u), append(h.Waiting, w)
				}
			}
		}
		prev = now
	}
}

// uplinkUse is, for each second, the mean of the hosts' uplink use: the
// share of the swarm's upload capacity put to work.
func uplinkUse(hosts []HostSeries) []float64 {
	if len(hosts) == 0 {
		return nil
	}
	use := make([]float64, len(hosts[0].Up))
	for _, h := range hosts {
		for s, u := range h.Up {
			use[s] += u / float64(len(hosts))
		}
	}
	return use
}

type hostFate int

const (
	hostFailed hostFate = iota
	hostKilled
	hostRestarted
)

// eventState applies a scenario's events and tells failed downloads why.
type eventState struct {
	mu        sync.Mutex
	fate      []hostFate
	restarted []chan struct{} // closed when the host is back
}

func newEventState(n int) *eventState {
	e := &eventState{fate: make([]hostFate, n), restarted: make([]chan struct{}, n)}
	for i := range e.restarted {
		e.restarted[i] = make(chan struct{})
	}
	return e
}

func (e *eventState) run(ctx context.Context, spec SwarmSpec, links []*shape.Link, c *Cluster) {
	start := time.Now()
	events := slices.Clone(spec.Events)
	slices.SortFunc(events, func(a, b Event) int { return int(a.At - b.At) })
	for _, ev := range events {
		select {
		case <-time.After(time.Until(start.Add(ev.At))):
		case <-ctx.Done():
			return
		}
		idx := ev.Host
		if spec.Seed {
			idx++
		}
		switch ev.Action {
		case "slow":
			links[ev.Host].Set(shape.Spec{Up: int64(ev.Up), Down: int64(ev.Down), Latency: spec.Latency, Loss: spec.Loss})
		case "kill":
			if c != nil {
				e.set(ev.Host, hostKilled)
				_ = c.Node(idx).Stop()
			}
		case "restart":
			if c != nil {
				e.set(ev.Host, hostRestarted)
				if _, err := c.Restart(ctx, idx); err == nil {
					close(e.restarted[ev.Host])
				}
			}
		}
	}
}

func (e *eventState) set(i int, f hostFate) {
	e.mu.Lock()
	e.fate[i] = f
	e.mu.Unlock()
}

// wait tells a failed download what happened to its host, waiting for a
// restart to finish.
func (e *eventState) wait(ctx context.Context, i int) hostFate {
	e.mu.Lock()
	f := e.fate[i]
	e.mu.Unlock()
	if f == hostRestarted {
		select {
		case <-e.restarted[i]:
		case <-ctx.Done():
			return hostFailed
		}
		e.set(i, hostFailed) // a second failure is a failure
	}
	return f
}

func (e *eventState) killed() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int
	for i, f := range e.fate {
		if f == hostKilled {
			out = append(out, i)
		}
	}
	return out
}

// httpFetch downloads url straight from the origin through a shaped link.
func httpFetch(ctx context.Context, link *shape.Link, url string, want [32]byte) error {
	d := net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return link.Conn(c), nil
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("origin: %s", resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		return errors.New("content differs")
	}
	return nil
}

// String formats a result as one table row.
func (r SwarmResult) String() string {
	return fmt.Sprintf("p50 %.1fs  p99 %.1fs  last %.1fs  bound %.1fs  efficiency %.2f  origin %.3f×  cpu %.1fs/%.1fs",
		r.P50.Seconds(), r.P99.Seconds(), r.Last.Seconds(), r.Bound.Seconds(), r.Efficiency, r.OriginRatio, r.CPU.Seconds(), r.Elapsed.Seconds())
}
