package testnet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/scheduler"
)

// netnsMaxHosts bounds a netns run (one /24 per IDC).
const netnsMaxHosts = 250

// nsProc is a dfnode or scheduler process in its namespace.
type nsProc struct {
	name, ns, dir, ip, log string
	args                   []string // after the binary
	bin                    string
	cmd                    *exec.Cmd
	done                   chan error
}

func (p *nsProc) start() error {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// ip netns exec execs the binary in place: the process is ours, and
	// dies with us (Pdeathsig).
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", p.ns, p.bin}, p.args...)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.done = make(chan error, 1)
	go func() {
		p.done <- p.cmd.Wait()
		logf.Close()
	}()
	return nil
}

// exited reports whether the process has exited.
func (p *nsProc) exited() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// stop ends the process (SIGTERM, SIGKILL after 10 s); kill is SIGKILL at once.
func (p *nsProc) stop(kill bool) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	if kill {
		_ = p.cmd.Process.Kill()
	} else {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

// netnsSwarm is one netns run's processes.
type netnsSwarm struct {
	spec   SwarmSpec
	dir    string
	topo   *netnsTopology
	secret string
	scheds []string // scheduler multiaddrs
	procs  []*nsProc
	nodes  []*nsProc // nodes (the seed first when there is one)
	mu     sync.Mutex
}

// runNetnsSwarm is RunSwarm on the network-namespace back end.
func runNetnsSwarm(ctx context.Context, dir string, spec SwarmSpec) (res SwarmResult, err error) {
	res = SwarmResult{Spec: spec, Bound: spec.Bound(), Backend: BackendNetns}
	if err := NetnsAvailable(); err != nil {
		return res, err
	}
	switch {
	case spec.BinDir == "":
		return res, errors.New("netns back end: no binary directory (BinDir) holding dfnode and scheduler")
	case spec.NoP2P:
		return res, errors.New("netns back end: the no-P2P baseline runs in-process only")
	case spec.Nodes > netnsMaxHosts:
		return res, fmt.Errorf("netns back end: %d hosts, at most %d", spec.Nodes, netnsMaxHosts)
	case spec.MaxUploads < 0:
		return res, errors.New("netns back end: negative MaxUploads")
	}
	for _, e := range spec.Events {
		if e.Action == "corrupt" {
			return res, errors.New(`netns back end: the "corrupt" action needs an in-process node (a lying upload store); use the in-process back end`)
		}
	}
	for _, bin := range []string{"dfnode", "scheduler"} {
		if _, err := os.Stat(filepath.Join(spec.BinDir, bin)); err != nil {
			return res, fmt.Errorf("netns back end: %w (build the binaries: make build)", err)
		}
	}
	if spec.Latency > 0 || spec.Loss > 0 {
		res.Notes = append(res.Notes, "latency and loss are not applied by the netns back end (this kernel has no netem; the userspace shaper works in-process only)")
	}
	if removed, err := CleanupNetns(ctx); err != nil {
		spec.Log.Warn("removing namespaces of earlier runs", "err", err)
	} else if len(removed) > 0 {
		spec.Log.Info("removed namespaces left by earlier runs", "namespaces", removed)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	topo, err := newNetnsTopology(spec.IDCs)
	if err != nil {
		return res, err
	}
	s := &netnsSwarm{spec: spec, dir: dir, topo: topo}
	defer func() {
		s.stopAll()
		if cerr := topo.close(ctx); cerr != nil && err == nil {
			err = fmt.Errorf("netns cleanup: %w", cerr)
		}
	}()
	if err := topo.setup(ctx, spec.InterIDC); err != nil {
		return res, err
	}

	data := Payload(int(spec.Size), uint64(spec.Size))
	want := sha256.Sum256(data)
	ons, err := topo.endpoint(ctx, "o", -1, ipIn(-1, 1), spec.OriginUp, 0)
	if err != nil {
		return res, err
	}
	ln, err := listenInNetns(ons, ipIn(-1, 1)+":8080")
	if err != nil {
		return res, err
	}
	origin := NewOriginOn(ln)
	defer origin.Close()
	origin.Put("/swarm.bin", data, `"swarm"`)
	url := origin.URL("/swarm.bin")

	if err := s.writeSecret(); err != nil {
		return res, err
	}
	for k := range spec.Schedulers {
		if err := s.startScheduler(ctx, k); err != nil {
			return res, err
		}
	}
	n := spec.Nodes
	if spec.Seed {
		n++
	}
	for i := range n {
		if err := s.startNode(ctx, i); err != nil {
			return res, err
		}
	}
	host := func(i int) int { // host index → node index
		if spec.Seed {
			return i + 1
		}
		return i
	}

	cpu0, child0, t0 := cpuTime(), childCPUTime(), time.Now()
	res.Completion = make([]time.Duration, spec.Nodes)
	errs := make([]error, spec.Nodes)
	ev := newEventState(spec.Nodes)
	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	go s.events(evCtx, ev)
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
				err := s.fetch(ctx, host(i), url, want)
				if err == nil {
					break
				}
				switch ev.wait(ctx, i) {
				case hostKilled:
					return
				case hostRestarted:
					continue
				}
				errs[i] = fmt.Errorf("host %d: %w (log: %s)", i, err, s.node(host(i)).log)
				return
			}
			res.Completion[i] = time.Since(start)
		})
	}
	wg.Wait()
	stopEvents()
	res.Killed = ev.killed()
	res.Elapsed = time.Since(t0)
	s.logQdiscs(ctx, ons)
	traffic, uploaded, terr := s.traffic(ctx)
	res.Uploaded = uploaded
	s.stopAll() // children's CPU is counted once they are reaped
	res.CPU = cpuTime() - cpu0 + childCPUTime() - child0
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if terr != nil {
		return res, terr
	}
	res.Traffic = traffic
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
	res.Efficiency = float64(res.Bound) / float64(res.Last)
	return res, nil
}

func childCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (s *netnsSwarm) writeSecret() error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	s.secret = filepath.Join(s.dir, "cluster-secret")
	return os.WriteFile(s.secret, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600)
}

func (s *netnsSwarm) startScheduler(ctx context.Context, k int) error {
	role := fmt.Sprintf("s%d", k)
	ip := ipIn(-1, 2+k)
	ns, err := s.topo.endpoint(ctx, role, -1, ip, 0, 0)
	if err != nil {
		return err
	}
	p := &nsProc{name: "scheduler" + fmt.Sprint(k), ns: ns, ip: ip, bin: filepath.Join(s.spec.BinDir, "scheduler"),
		dir: filepath.Join(s.dir, role), log: filepath.Join(s.dir, role+".log")}
	p.args = []string{"run", "--data-dir", p.dir, "--cluster-secret-file", s.secret,
		"--listen", "/ip4/" + ip + "/udp/4000/quic-v1", "--ops-addr", ip + ":9000", "--log-format", "text"}
	if err := p.start(); err != nil {
		return err
	}
	s.procs = append(s.procs, p)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var addrs []string
	err = WaitFor(wctx, 50*time.Millisecond, func() bool {
		raw, err := os.ReadFile(filepath.Join(p.dir, scheduler.AddrsFile))
		addrs = strings.Fields(string(raw))
		return (err == nil && len(addrs) > 0) || p.exited()
	})
	if err != nil || p.exited() {
		return fmt.Errorf("scheduler %d did not start; see %s: %v", k, p.log, err)
	}
	s.scheds = append(s.scheds, addrs...)
	return nil
}

// startNode creates node i's namespace and starts it (node 0 is the seed
// when there is one; the others bootstrap from node 0).
func (s *netnsSwarm) startNode(ctx context.Context, i int) error {
	spec := s.spec
	h, seed := i, spec.Seed && i == 0
	if spec.Seed {
		h = max(i-1, 0)
	}
	g := spec.IDCOf(h)
	ip := ipIn(g, 1+i)
	role := fmt.Sprintf("h%d", i)
	ns, err := s.topo.endpoint(ctx, role, g, ip, spec.Up, spec.Down)
	if err != nil {
		return err
	}
	p := &nsProc{name: fmt.Sprintf("node%d", i), ns: ns, ip: ip, bin: filepath.Join(spec.BinDir, "dfnode"),
		dir: filepath.Join(s.dir, fmt.Sprintf("node%d", i)), log: filepath.Join(s.dir, fmt.Sprintf("node%d.log", i))}
	p.args = []string{"run", "--data-dir", p.dir, "--cluster-secret-file", s.secret,
		"--listen", fmt.Sprintf("/ip4/%s/udp/4001/quic-v1,/ip4/%s/tcp/4001", ip, ip),
		"--ops-addr", ip + ":9100",
		"--source-allowed-networks", "10.213.0.0/16",
		"--log-format", "text", "--log-level", nodeLogLevel(spec.Log)}
	if spec.Up > 0 {
		p.args = append(p.args, "--upload-capacity", fmt.Sprint(spec.Up))
	}
	if spec.MaxUploads > 0 {
		p.args = append(p.args, "--max-uploads", fmt.Sprint(spec.MaxUploads))
	}
	if spec.IDCs > 1 {
		p.args = append(p.args, "--idc", IDCName(g))
	}
	if seed {
		p.args = append(p.args, "--seed")
	}
	if len(s.scheds) > 0 {
		p.args = append(p.args, "--scheduler", strings.Join(s.scheds, ","))
	}
	if i > 0 {
		boot, err := api.NewClient(s.nodes[0].socket()).ID(ctx)
		if err != nil {
			return fmt.Errorf("node0's addresses: %w", err)
		}
		p.args = append(p.args, "--bootstrap", strings.Join(boot.Addrs, ","))
	}
	s.mu.Lock()
	s.nodes = append(s.nodes, p)
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return s.launch(ctx, p, i > 0)
}

func (p *nsProc) socket() string { return filepath.Join(p.dir, "dfnode.sock") }

// nodeLogLevel is the level a netns node logs at: debug when the run's
// logger takes debug records (dftestnet --log-level debug), else info, so
// that each node's log file always tells what its download did.
func nodeLogLevel(l *slog.Logger) string {
	if l != nil && l.Enabled(context.Background(), slog.LevelDebug) {
		return "debug"
	}
	return "info"
}

// launch starts a node process and waits until it is ready: its API answers
// and, when it has a bootstrap peer, /readyz says it joined the cluster.
func (s *netnsSwarm) launch(ctx context.Context, p *nsProc, joins bool) error {
	if err := p.start(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client, hc := api.NewClient(p.socket()), netnsHTTPClient(p.ns)
	err := WaitFor(wctx, 50*time.Millisecond, func() bool {
		if p.exited() {
			return true
		}
		if _, err := client.ID(wctx); err != nil {
			return false
		}
		if !joins {
			return true
		}
		req, err := http.NewRequestWithContext(wctx, http.MethodGet, "http://"+p.ip+":9100/readyz", nil)
		if err != nil {
			return false
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err == nil && p.exited() {
		err = errors.New("exited early")
	}
	if err != nil {
		return fmt.Errorf("%s: %w; see %s", p.name, err, p.log)
	}
	return nil
}

func (s *netnsSwarm) node(i int) *nsProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes[i]
}

// fetch downloads url through node i's API and checks the content.
func (s *netnsSwarm) fetch(ctx context.Context, i int, url string, want [32]byte) error {
	st, err := api.NewClient(s.node(i).socket()).Download(ctx, api.DownloadRequest{URL: url, PieceLength: s.spec.PieceLength})
	if err != nil {
		return err
	}
	defer st.Close()
	h := sha256.New()
	if _, err := io.Copy(h, st); err != nil {
		return err
	}
	if [32]byte(h.Sum(nil)) != want {
		return errors.New("content differs")
	}
	return nil
}

// events applies the timeline: slow changes a host's tbf; kill is
// SIGKILL; restart stops the process and starts it on the same data
// directory.
func (s *netnsSwarm) events(ctx context.Context, ev *eventState) {
	start := time.Now()
	events := slices.Clone(s.spec.Events)
	slices.SortFunc(events, func(a, b Event) int { return int(a.At - b.At) })
	for _, e := range events {
		select {
		case <-time.After(time.Until(start.Add(e.At))):
		case <-ctx.Done():
			return
		}
		idx := e.Host
		if s.spec.Seed {
			idx++
		}
		p := s.node(idx)
		switch e.Action {
		case "slow":
			if err := tbf(ctx, p.ns, "eth0", int64(e.Up)); err != nil {
				s.spec.Log.Warn("slow", "host", e.Host, "err", err)
			}
			if err := tbf(ctx, s.topo.router(), "v"+strings.TrimPrefix(p.ns, s.topo.prefix+"-"), int64(e.Down)); err != nil {
				s.spec.Log.Warn("slow", "host", e.Host, "err", err)
			}
		case "kill":
			ev.set(e.Host, hostKilled)
			p.stop(true)
		case "restart":
			ev.set(e.Host, hostRestarted)
			p.stop(false)
			np := *p
			np.cmd, np.done = nil, nil
			if err := s.launch(ctx, &np, true); err != nil {
				s.spec.Log.Warn("restart", "host", e.Host, "err", err)
				continue
			}
			s.mu.Lock()
			s.nodes[idx] = &np
			s.procs = append(s.procs, &np)
			s.mu.Unlock()
			close(ev.restarted[e.Host])
		}
	}
}

func (s *netnsSwarm) stopAll() {
	s.mu.Lock()
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stop(false) })
	}
	wg.Wait()
}

// traffic reads the kernel's counters: each host's eth0 sent bytes, and
// the router's htb classes (what crossed into each bridge, by source IDC).
// Host → host bytes of IDC g are its hosts' sent bytes minus what they sent
// to the core (origin, schedulers) and to other IDCs. Counts include
// Ethernet, IP and UDP headers.
func (s *netnsSwarm) traffic(ctx context.Context) (*Traffic, []int64, error) {
	ctx = context.WithoutCancel(ctx)
	spec, g := s.spec, s.spec.groups()
	sent := make([]int64, g)
	var uploaded []int64
	for i, p := range s.nodes {
		tx, err := txBytes(ctx, p.ns, "eth0")
		if err != nil {
			return nil, nil, err
		}
		h := i
		if spec.Seed {
			h = max(i-1, 0)
		}
		sent[spec.IDCOf(h)] += tx
		if !spec.Seed || i > 0 {
			uploaded = append(uploaded, tx)
		}
	}
	into := make([]map[int]int64, g+1) // [bridge g+1] → class minor → bytes
	for b := -1; b < g; b++ {
		m, err := s.topo.classBytes(ctx, b)
		if err != nil {
			return nil, uploaded, err
		}
		into[b+1] = m
	}
	bytes := func(from, to int) int64 {
		if from != to {
			return into[to+1][10+from]
		}
		v := sent[from] - into[0][10+from]
		for other := range g {
			if other != from {
				v -= into[other+1][10+from]
			}
		}
		return max(v, 0)
	}
	return newTraffic(spec, bytes), uploaded, nil
}

// logQdiscs logs every shaped interface's qdisc counters (sent, dropped,
// overlimits) at debug level: where a run lost packets.
func (s *netnsSwarm) logQdiscs(ctx context.Context, origin string) {
	if !s.spec.Log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	show := func(ns, dev string) {
		out, err := output(context.WithoutCancel(ctx), "tc", "-n", ns, "-s", "qdisc", "show", "dev", dev)
		s.spec.Log.Debug("qdisc", "namespace", ns, "dev", dev, "stats", strings.Join(strings.Fields(string(out)), " "), "err", err)
	}
	show(origin, "eth0")
	spaces := []string{origin, s.topo.router()}
	for _, p := range s.nodes {
		spaces = append(spaces, p.ns)
	}
	for _, ns := range spaces {
		out, err := output(context.WithoutCancel(ctx), "ip", "netns", "exec", ns, "nstat", "-a", "-s")
		s.spec.Log.Debug("nstat", "namespace", ns, "counters", strings.Join(strings.Fields(string(out)), " "), "err", err)
	}
	for _, p := range s.nodes {
		show(p.ns, "eth0")
		show(s.topo.router(), "v"+strings.TrimPrefix(p.ns, s.topo.prefix+"-"))
	}
}
