package testnet

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// ProcManager is a manager process joined to a process cluster: it has a
// scheduler cluster "default" and a cluster-scoped token (TokenFile) that
// the cluster's scheduler and nodes use to follow it.
type ProcManager struct {
	*ManagerClient
	Dir       string
	TokenFile string
	cmd       *exec.Cmd
	done      chan error
}

// ProcClusterName is the scheduler cluster a process cluster's manager creates.
const ProcClusterName = "default"

// startManager starts `manager run` with the cluster secret, loopback
// listeners, preheat allowed to loopback origins and plain-HTTP registries.
func (c *ProcCluster) startManager(ctx context.Context) (*ProcManager, error) {
	m := &ProcManager{ManagerClient: &ManagerClient{}, Dir: filepath.Join(c.Dir, "manager"), done: make(chan error, 1)}
	logPath := filepath.Join(c.Dir, "manager.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	m.cmd = exec.Command(filepath.Join(c.BinDir, "manager"), "run", "--data-dir", m.Dir, "--addr", "127.0.0.1:0",
		"--cluster-secret-file", c.Secret, "--p2p-listen", "/ip4/127.0.0.1/udp/0/quic-v1",
		"--preheat-allow", "127.0.0.0/8", "--preheat-plain-http", "--instance-ttl", "30s", "--log-format", "text")
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := m.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start manager: %w", err)
	}
	go func() {
		m.done <- m.cmd.Wait()
		logf.Close()
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = WaitFor(wctx, 50*time.Millisecond, func() bool {
		select {
		case err := <-m.done:
			m.done <- err
			return true
		default:
		}
		if m.BaseURL == "" { // the port is the kernel's choice: the manager logs it
			raw, _ := os.ReadFile(logPath)
			mt := servingRE.FindSubmatch(raw)
			if mt == nil {
				return false
			}
			m.BaseURL = string(mt[1])
		}
		resp, err := http.Get(m.BaseURL + "/api/v1/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err == nil {
		raw, rerr := os.ReadFile(logPath)
		if mt := passwordRE.FindSubmatch(raw); mt != nil {
			m.Password = string(mt[1])
		} else {
			err = fmt.Errorf("no root password in %s (rerr %v)", logPath, rerr)
		}
	}
	if err == nil {
		err = m.Do(ctx, "POST", "/api/v1/clusters", map[string]any{"name": ProcClusterName, "default": true,
			"description": "the testnet process cluster"}, nil)
	}
	if err == nil {
		m.TokenFile = filepath.Join(c.Dir, "manager.token")
		err = m.ClusterToken(ctx, "testnet", m.TokenFile)
	}
	if err != nil {
		m.stop()
		return nil, fmt.Errorf("manager did not start; see %s: %w", logPath, err)
	}
	return m, nil
}

// nodeArgs are the flags that make a dfnode or scheduler follow m.
func (m *ProcManager) nodeArgs() []string {
	return []string{"--manager", m.BaseURL, "--manager-token-file", m.TokenFile}
}

func (m *ProcManager) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.done:
		m.done <- err
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
	}
}
