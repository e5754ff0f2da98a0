package testnet_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/testnet"
)

// netnsLeft lists the namespaces of this process's runs still present.
func netnsLeft(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), fmt.Sprintf("dft-%d-", os.Getpid())) {
			left = append(left, e.Name())
		}
	}
	return left
}

// The ci-small scenario on the namespace back end: real dfnode and
// scheduler processes, one network namespace each, tc-shaped links. Every
// host ends with the verified content (RunSwarm checks it byte for byte),
// the origin serves about one copy, and nothing is left behind.
func TestNetnsSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs processes in network namespaces")
	}
	if err := testnet.NetnsAvailable(); err != nil {
		t.Skip(err)
	}
	sc, err := testnet.LoadScenario("scenarios/ci-small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinaries(t)
	tests := []struct {
		name string
		idcs int
	}{
		{"one IDC", 0},
		{"two IDCs", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			spec := sc.Spec()
			spec.Backend, spec.BinDir, spec.IDCs = testnet.BackendNetns, bin, tt.idcs
			dir := t.TempDir()
			res, err := testnet.RunSwarm(ctx, dir, spec)
			if left := netnsLeft(t); len(left) > 0 {
				t.Errorf("namespaces left behind: %v", left)
			}
			if err != nil {
				logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
				for _, l := range logs {
					b, _ := os.ReadFile(l)
					t.Logf("%s:\n%s", l, b[max(0, len(b)-3000):])
				}
				t.Fatal(err)
			}
			t.Logf("%s; traffic %+v", res, *res.Traffic)
			if res.Backend != testnet.BackendNetns || len(res.Completion) != spec.Nodes {
				t.Fatalf("backend %q, %d completions", res.Backend, len(res.Completion))
			}
			if res.OriginRatio < 0.99 || res.OriginRatio > 1.5 {
				t.Errorf("origin served %.2f× the file, want about 1", res.OriginRatio)
			}
			// 4 hosts, one copy from the origin: most of the other three
			// copies travel between hosts.
			if min := 2 * spec.Size; res.Traffic.PeerBytes < min {
				t.Errorf("hosts sent each other %d bytes, want at least %d", res.Traffic.PeerBytes, min)
			}
			if tt.idcs == 2 && (res.Traffic.InterIDC == 0 || res.Traffic.IntraIDC == 0 || len(res.Traffic.IDCs) != 2) {
				t.Errorf("two IDCs: traffic %+v, want bytes both inside and across", *res.Traffic)
			}
		})
	}
}
