package testnet

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dragonfly-p2p/df/node/api"
)

// ProcNode is a dfnode running as its own process.
type ProcNode struct {
	Name   string
	Dir    string
	Socket string
	Seed   bool
	Addrs  []string
	// Mirror is the registry mirror's address ("" when off).
	Mirror string
	cmd    *exec.Cmd
	done   chan error
}

// ProcCluster is a set of dfnode processes started from real binaries.
type ProcCluster struct {
	Dir    string
	BinDir string
	Secret string // path of the secret file
	Nodes  []*ProcNode
	// Scheduler is set by StartProcsWithScheduler and StartProcsWithManager.
	Scheduler *ProcScheduler
	// Manager is set by StartProcsWithManager.
	Manager *ProcManager
}

// StartProcs starts n dfnode processes from binDir under dir (node 0 first,
// the others bootstrapping from it); seeds lists which are seed peers.
// extraArgs(i) adds flags to node i.
func StartProcs(ctx context.Context, dir, binDir string, n int, seeds map[int]bool, extraArgs func(i int) []string) (*ProcCluster, error) {
	return startProcs(ctx, dir, binDir, n, seeds, extraArgs, false, false)
}

// StartProcsWithScheduler is StartProcs with a scheduler process started
// first; every node gets it as --scheduler.
func StartProcsWithScheduler(ctx context.Context, dir, binDir string, n int, seeds map[int]bool, extraArgs func(i int) []string) (*ProcCluster, error) {
	return startProcs(ctx, dir, binDir, n, seeds, extraArgs, true, false)
}

// StartProcsWithManager starts a manager process first (cluster "default",
// a cluster-scoped token), then a scheduler that registers with it, then
// the nodes, which follow the manager (--manager) and keep --scheduler as
// the fallback. Seed peers register by keepalive, so the manager's jobs
// (preheat) run on them.
func StartProcsWithManager(ctx context.Context, dir, binDir string, n int, seeds map[int]bool, extraArgs func(i int) []string) (*ProcCluster, error) {
	return startProcs(ctx, dir, binDir, n, seeds, extraArgs, true, true)
}

func startProcs(ctx context.Context, dir, binDir string, n int, seeds map[int]bool, extraArgs func(i int) []string, withScheduler, withManager bool) (*ProcCluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := filepath.Join(dir, "cluster-secret")
	if err := os.WriteFile(secret, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
		return nil, err
	}
	c := &ProcCluster{Dir: dir, BinDir: binDir, Secret: secret}
	if withManager {
		var err error
		if c.Manager, err = c.startManager(ctx); err != nil {
			return nil, err
		}
		user := extraArgs
		extraArgs = func(i int) []string {
			extra := c.Manager.nodeArgs()
			if user != nil {
				extra = append(extra, user(i)...)
			}
			return extra
		}
	}
	if withScheduler {
		var err error
		if c.Scheduler, err = c.startScheduler(ctx); err != nil {
			c.Stop()
			return nil, err
		}
		user := extraArgs
		extraArgs = func(i int) []string {
			extra := []string{"--scheduler", strings.Join(c.Scheduler.Addrs, ",")}
			if user != nil {
				extra = append(extra, user(i)...)
			}
			return extra
		}
	}
	for i := 0; i < n; i++ {
		var boot []string
		if i > 0 {
			boot = c.Nodes[0].Addrs
		}
		var extra []string
		if extraArgs != nil {
			extra = extraArgs(i)
		}
		nd, err := c.start(ctx, i, seeds[i], boot, extra)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, nd)
	}
	return c, nil
}

// ProcScheduler is a scheduler process.
type ProcScheduler struct {
	Dir     string
	Addrs   []string
	OpsAddr string
	cmd     *exec.Cmd
	done    chan error
}

func (c *ProcCluster) startScheduler(ctx context.Context) (*ProcScheduler, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ops := ln.Addr().String()
	ln.Close()
	s := &ProcScheduler{Dir: filepath.Join(c.Dir, "scheduler"), OpsAddr: ops, done: make(chan error, 1)}
	logf, err := os.OpenFile(filepath.Join(c.Dir, "scheduler.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(filepath.Join(c.BinDir, "scheduler"), "run", "--data-dir", s.Dir, "--cluster-secret-file", c.Secret,
		"--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--ops-addr", ops, "--log-format", "text", "--log-level", "debug")
	if c.Manager != nil {
		s.cmd.Args = append(s.cmd.Args, append(c.Manager.nodeArgs(), "--manager-cluster", ProcClusterName)...)
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start scheduler: %w", err)
	}
	go func() {
		s.done <- s.cmd.Wait()
		logf.Close()
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = WaitFor(wctx, 50*time.Millisecond, func() bool {
		out, err := exec.CommandContext(wctx, filepath.Join(c.BinDir, "scheduler"), "id", "--data-dir", s.Dir).Output()
		s.Addrs = strings.Fields(string(out))
		return err == nil && len(s.Addrs) > 0
	})
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("scheduler did not start; see %s: %w", filepath.Join(c.Dir, "scheduler.log"), err)
	}
	return s, nil
}

func (s *ProcScheduler) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Metrics returns the scheduler's Prometheus samples whose names start
// with prefix, as "name{labels}" → value.
func (s *ProcScheduler) Metrics(ctx context.Context, prefix string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.OpsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

func (c *ProcCluster) start(ctx context.Context, i int, seed bool, boot, extra []string) (*ProcNode, error) {
	name := fmt.Sprintf("node%d", i)
	nd := &ProcNode{Name: name, Dir: filepath.Join(c.Dir, name), Seed: seed, done: make(chan error, 1)}
	nd.Socket = filepath.Join(nd.Dir, "dfnode.sock")
	args := []string{"run",
		"--data-dir", nd.Dir,
		"--cluster-secret-file", c.Secret,
		"--listen", "/ip4/127.0.0.1/udp/0/quic-v1,/ip4/127.0.0.1/tcp/0",
		"--ops-addr", "127.0.0.1:0",
		"--source-allowed-networks", "127.0.0.0/8",
		"--log-format", "text",
	}
	if seed {
		args = append(args, "--seed")
	}
	if len(boot) > 0 {
		args = append(args, "--bootstrap", strings.Join(boot, ","))
	}
	args = append(args, extra...)
	logf, err := os.OpenFile(filepath.Join(c.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	nd.cmd = exec.Command(filepath.Join(c.BinDir, "dfnode"), args...)
	nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
	nd.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := nd.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		nd.done <- nd.cmd.Wait()
		logf.Close()
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := api.NewClient(nd.Socket)
	err = WaitFor(wctx, 50*time.Millisecond, func() bool {
		select {
		case <-nd.done:
			return true
		default:
		}
		id, err := client.ID(wctx)
		if err != nil {
			return false
		}
		nd.Addrs, nd.Mirror = id.Addrs, id.Mirror
		return true
	})
	if err == nil && len(nd.Addrs) == 0 {
		log := filepath.Join(c.Dir, name+".log")
		err = fmt.Errorf("exited early; the end of %s:\n%s", log, logTail(log, 2048))
	}
	if err != nil {
		nd.stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return nd, nil
}

// logTail returns up to the last n bytes of the file at path (what a
// process that exited early said: test directories are gone afterwards).
func logTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, err := io.ReadAll(io.LimitReader(f, n))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Run runs one of the cluster's CLIs (dfget, dfcache, dfnode) against node
// i and returns its stdout.
func (c *ProcCluster) Run(ctx context.Context, i int, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, bin), args...)
	cmd.Env = append(os.Environ(), "DFNODE_SOCKET="+c.Nodes[i].Socket)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (n *ProcNode) stop() error {
	if n.cmd.Process == nil {
		return nil
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.done:
		n.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
			return nil
		}
		return err
	case <-time.After(15 * time.Second):
		_ = n.cmd.Process.Kill()
		return fmt.Errorf("%s did not stop within 15 s; killed", n.Name)
	}
}

// Stop stops every process.
func (c *ProcCluster) Stop() error {
	var errs []error
	for _, n := range c.Nodes {
		errs = append(errs, n.stop())
	}
	if c.Scheduler != nil {
		c.Scheduler.stop()
	}
	if c.Manager != nil {
		c.Manager.stop()
	}
	return errors.Join(errs...)
}
