package dynclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Keepalive paths of the manager's API.
const (
	SeedPeerKeepalivePath  = "/api/v1/seed-peers/keepalive"
	SchedulerKeepalivePath = "/api/v1/schedulers/keepalive"
	NodeConfigPath         = "/api/v1/dynconfig/node"
	SchedulerConfigPath    = "/api/v1/dynconfig/scheduler"
)

// MaxKeepaliveBytes is the largest keepalive body the manager accepts.
const MaxKeepaliveBytes = 1 << 20

// KeepaliveRequest registers a seed peer or scheduler with the manager;
// it is active until instance_ttl after its last keepalive.
type KeepaliveRequest struct {
	ID       string   `json:"id"` // libp2p peer ID
	Cluster  string   `json:"cluster"`
	Hostname string   `json:"hostname"`
	IP       string   `json:"ip"`
	Addrs    []string `json:"addrs"` // full multiaddrs
	IDC      string   `json:"idc"`
	Location string   `json:"location"`
	// Summary is the scheduler's swarm summary (schedulers only; nil omits it).
	Summary *SchedulerSummary `json:"summary,omitempty"`
}

// Keepalive posts req to base+path with token (a personal access token
// with the cluster scope).
func Keepalive(ctx context.Context, hc *http.Client, base, path, token string, req KeepaliveRequest) error {
	raw, err := json.Marshal(req)
	for err == nil && len(raw) > MaxKeepaliveBytes && req.Summary != nil && len(req.Summary.Hosts) > 0 {
		// The manager refuses bodies over 1 MiB: list fewer hosts.
		sum := *req.Summary
		sum.Hosts, sum.HostsTruncated = sum.Hosts[:len(sum.Hosts)/2], true
		req.Summary = &sum
		raw, err = json.Marshal(req)
	}
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(hr)
	if err != nil {
		return fmt.Errorf("dynclient: keepalive: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("dynclient: keepalive: manager answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
