package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dragonfly-p2p/df/manager"
	"github.com/dragonfly-p2p/df/protocol/p2p"
)

// Manager is an in-process manager that joined a cluster as an admitted
// libp2p host (so it can carry out jobs on the seed peers).
type Manager struct {
	*manager.Manager
	*ManagerClient
	Dir      string
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	stopErr  error
}

// ManagerClient calls a manager's REST API as root.
type ManagerClient struct {
	BaseURL  string // http://127.0.0.1:PORT
	Password string // root's first-start password

	mu    sync.Mutex
	token string
}

// ManagerConfig is the configuration StartManager uses for a manager in
// dir: loopback API on a free port, loopback QUIC, preheat allowed to reach
// loopback origins and plain-HTTP registries, the cheapest bcrypt cost the
// configuration accepts, and a 5 s instance TTL.
func ManagerConfig(dir string) manager.Config {
	cfg := manager.DefaultConfig()
	cfg.DataDir, cfg.Addr = dir, "127.0.0.1:0"
	cfg.PreheatAllow = []string{"127.0.0.0/8", "::1/128"}
	cfg.PreheatPlainHTTP = true
	cfg.BcryptCost = 10
	cfg.InstanceTTL = 5 * time.Second
	cfg.P2PListen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	return cfg
}

var passwordRE = regexp.MustCompile(`password (\S+)`)

// servingRE finds the URL a manager process listens on in its text log.
var servingRE = regexp.MustCompile(`msg="manager: serving" url=(\S+)`)

// StartManager starts a manager for the cluster in <cluster dir>/manager
// (a restart reuses it: same store, same identity, same jobs).
func (c *Cluster) StartManager(ctx context.Context, opts ...manager.Option) (*Manager, error) {
	return StartManager(ctx, ManagerConfig(filepath.Join(c.dir, "manager")), c.secret, opts...)
}

// StartManager starts a manager with cfg joined to the cluster of secret.
func StartManager(ctx context.Context, cfg manager.Config, secret []byte, opts ...manager.Option) (*Manager, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	m, err := manager.New(cfg, append([]manager.Option{
		manager.WithBootstrapOutput(&out),
		manager.WithClusterSecret(secret),
		manager.WithP2POptions(p2p.WithLimits(Limits())),
	}, opts...)...)
	if err != nil {
		return nil, err
	}
	tm := &Manager{Manager: m, ManagerClient: &ManagerClient{}, Dir: cfg.DataDir, done: make(chan error, 1)}
	if mt := passwordRE.FindStringSubmatch(out.String()); mt != nil {
		tm.Password = mt[1]
	} else if raw, err := os.ReadFile(filepath.Join(cfg.DataDir, "root-password")); err == nil {
		tm.Password = strings.TrimSpace(string(raw))
	}
	if tm.Password != "" {
		// Kept for restarts of the same test manager (0600 in its 0700 dir).
		_ = os.WriteFile(filepath.Join(cfg.DataDir, "root-password"), []byte(tm.Password+"\n"), 0o600)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	tm.cancel = cancel
	go func() { tm.done <- m.Run(rctx) }()
	for m.Ready() != nil {
		select {
		case err := <-tm.done:
			cancel()
			return nil, fmt.Errorf("manager stopped at start: %w", err)
		case <-ctx.Done():
			_ = tm.Stop()
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	tm.BaseURL = "http://" + m.Addr()
	return tm, nil
}

// URL is the manager's base URL (console at /, API under /api/v1).
func (m *Manager) URL() string { return "http://" + m.Addr() }

// Stop stops the manager and waits for it.
func (m *Manager) Stop() error {
	m.stopOnce.Do(func() {
		m.cancel()
		m.stopErr = <-m.done
	})
	return m.stopErr
}

// Do calls the REST API as root; out (may be nil) receives the JSON answer.
func (m *ManagerClient) Do(ctx context.Context, method, path string, body, out any) error {
	tok, err := m.rootToken(ctx)
	if err != nil {
		return err
	}
	return apiCall(ctx, m.BaseURL, tok, method, path, body, out)
}

func (m *ManagerClient) rootToken(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.token != "" {
		return m.token, nil
	}
	var lr struct {
		Token string `json:"token"`
	}
	if err := apiCall(ctx, m.BaseURL, "", "POST", "/api/v1/login", map[string]string{"name": "root", "password": m.Password}, &lr); err != nil {
		return "", err
	}
	m.token = lr.Token
	return m.token, nil
}

// ClusterToken creates a personal access token with the cluster scope (what
// nodes and schedulers use for keepalive and dynconfig) and writes it to a
// 0600 file in the manager's directory; it returns the file's path.
func (m *Manager) ClusterToken(ctx context.Context, name string) (string, error) {
	path := filepath.Join(m.Dir, name+".token")
	return path, m.ManagerClient.ClusterToken(ctx, name, path)
}

// ClusterToken creates a personal access token with the cluster scope and
// writes it to path (0600).
func (m *ManagerClient) ClusterToken(ctx context.Context, name, path string) error {
	var tv struct {
		Token string `json:"token"`
	}
	if err := m.Do(ctx, "POST", "/api/v1/tokens", map[string]any{"name": name, "scopes": []string{"cluster"}, "expires_in": "24h"}, &tv); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(tv.Token+"\n"), 0o600)
}

// Job is a job as the API shows it.
type Job struct {
	ID       uint64 `json:"id"`
	Type     string `json:"type"`
	State    string `json:"state"`
	Error    string `json:"error"`
	Attempts int    `json:"attempts"`
	Result   []byte `json:"result"` // JSON (the API shows it base64-encoded)
	Progress []struct {
		Cluster string `json:"cluster"`
		URL     string `json:"url"`
		Digest  string `json:"digest"`
		Size    int64  `json:"size"`
		Done    int64  `json:"done"`
		State   string `json:"state"`
		Error   string `json:"error"`
	} `json:"progress"`
}

// SubmitJob creates a job (clusters nil: all).
func (m *ManagerClient) SubmitJob(ctx context.Context, typ string, args any, clusters []string) (Job, error) {
	var j Job
	err := m.Do(ctx, "POST", "/api/v1/jobs", map[string]any{"type": typ, "args": args, "clusters": clusters}, &j)
	return j, err
}

// Job reads a job.
func (m *ManagerClient) Job(ctx context.Context, id uint64) (Job, error) {
	var j Job
	err := m.Do(ctx, "GET", fmt.Sprintf("/api/v1/jobs/%d", id), nil, &j)
	return j, err
}

// WaitJob polls a job until it succeeded or failed (or ctx ends); each
// poll's job is passed to seen (may be nil).
func (m *ManagerClient) WaitJob(ctx context.Context, id uint64, seen func(Job)) (Job, error) {
	for {
		j, err := m.Job(ctx, id)
		if err == nil {
			if seen != nil {
				seen(j)
			}
			if j.State == "succeeded" || j.State == "failed" {
				return j, nil
			}
		}
		select {
		case <-ctx.Done():
			return j, fmt.Errorf("job %d still %s: %w", id, j.State, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// apiError is a non-2xx answer of the manager.
type apiError struct {
	Status int
	Body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("manager answered %d: %s", e.Status, e.Body) }

// ErrManagerStatus matches any non-2xx answer (errors.As with *apiError is internal).
var ErrManagerStatus = errors.New("manager refused the request")

func (e *apiError) Unwrap() error { return ErrManagerStatus }

func apiCall(ctx context.Context, base, token, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{Status: resp.StatusCode, Body: strings.TrimSpace(string(raw))}
	}
	if out != nil && len(raw) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}
