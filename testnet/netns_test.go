package testnet_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
			// one copy per IDC at most
			if limit := 1.05 * float64(max(tt.idcs, 1)); res.OriginRatio < 0.99 || res.OriginRatio > limit {
				t.Errorf("origin served %.2f× the file, want 1 to %.2f", res.OriginRatio, limit)
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

// Namespaces of a run whose process is gone are removed; those of a live
// process are kept.
func TestCleanupNetns(t *testing.T) {
	if err := testnet.NetnsAvailable(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	dead := "dft-999999999-cafe00-r"          // no such pid
	live := fmt.Sprintf("dft-%d-cafe01-r", 1) // pid 1 is always running
	for _, name := range []string{dead, live} {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	}
	removed, err := testnet.CleanupNetns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, dead) || slices.Contains(removed, live) {
		t.Fatalf("removed %v; want %s and not %s", removed, dead, live)
	}
	if _, err := os.Stat("/var/run/netns/" + dead); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still exists: %v", dead, err)
	}
	if _, err := os.Stat("/var/run/netns/" + live); err != nil {
		t.Fatalf("%s was removed: %v", live, err)
	}
}

// BenchmarkBackends runs ci-small on both back ends side by side and
// reports each one's last-host time and their ratio (target: within 15 %).
// Root only.
func BenchmarkBackends(b *testing.B) {
	if err := testnet.NetnsAvailable(); err != nil {
		b.Skip(err)
	}
	sc, err := testnet.LoadScenario("scenarios/ci-small.yaml")
	if err != nil {
		b.Fatal(err)
	}
	bin := b.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../cli/cmd/dfnode", "../cli/cmd/scheduler").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	ctx := context.Background()
	var inproc, netns time.Duration
	for b.Loop() {
		spec := sc.Spec()
		spec.BinDir = bin
		spec.Backend = testnet.BackendInProcess
		a, err := testnet.RunSwarm(ctx, b.TempDir(), spec)
		if err != nil {
			b.Fatal(err)
		}
		spec.Backend = testnet.BackendNetns
		n, err := testnet.RunSwarm(ctx, b.TempDir(), spec)
		if err != nil {
			b.Fatal(err)
		}
		inproc, netns = inproc+a.Last, netns+n.Last
	}
	b.ReportMetric(inproc.Seconds()/float64(b.N), "inprocess-last-s")
	b.ReportMetric(netns.Seconds()/float64(b.N), "netns-last-s")
	b.ReportMetric(netns.Seconds()/inproc.Seconds(), "netns/inprocess")
}
