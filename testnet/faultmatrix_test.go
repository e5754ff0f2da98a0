package testnet_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/testnet"
)

func TestLoadFaultScenario(t *testing.T) {
	paths, err := filepath.Glob("scenarios/faults/*.yaml")
	if err != nil || len(paths) < 9 {
		t.Fatalf("fault scenarios: %d, %v", len(paths), err)
	}
	for _, p := range paths {
		if _, err := testnet.LoadFaultScenario(p); err != nil {
			t.Error(err)
		}
	}
	base := testnet.FaultScenario{Name: "x", Hosts: 4, Size: 1 << 20, Schedulers: 1}
	for name, tt := range map[string]struct {
		ev   testnet.FaultEvent
		want string
	}{
		"unknown action":    {testnet.FaultEvent{Action: "explode"}, "unknown action"},
		"host out of range": {testnet.FaultEvent{Action: "kill", Host: 4}, "host 4"},
		"quota too large":   {testnet.FaultEvent{Action: "disk-full", Quota: 2 << 20}, "quota"},
		"empty partition":   {testnet.FaultEvent{Action: "partition"}, "partition hosts"},
		"whole partition":   {testnet.FaultEvent{Action: "partition", Hosts: []int{0, 1, 2, 3}}, "not all"},
	} {
		t.Run(name, func(t *testing.T) {
			sc := base
			sc.Events = []testnet.FaultEvent{tt.ev}
			if err := sc.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	noMgr := base
	noMgr.Events = []testnet.FaultEvent{{Action: "manager-down"}}
	if err := noMgr.Validate(); err == nil || !strings.Contains(err.Error(), "manager: true") {
		t.Fatalf("manager-down without a manager: %v", err)
	}
	noSched := base
	noSched.Schedulers = 0
	noSched.Events = []testnet.FaultEvent{{Action: "kill-owner"}}
	if err := noSched.Validate(); err == nil {
		t.Fatal("kill-owner without schedulers accepted")
	}
}

// TestFaultMatrix runs every scenario of testnet/scenarios/faults (6 hosts,
// 8 MiB, 10-20 s each) and applies the matrix's assertions:
// surviving hosts hold byte-identical, verified content (delivered and
// stored), honest hosts served nothing unverified, a lying peer's pieces
// were rejected, a restarted host resumed, a full disk failed its download
// with ENOSPC, downloads went through the manager's ring when the manager
// went down. DF_FAULTS=name,name runs some only;
// DF_FAULTS_LOG=FILE writes every node's debug log there.
func TestFaultMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("runs shaped swarms with faults")
	}
	paths, err := filepath.Glob("scenarios/faults/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	only := os.Getenv("DF_FAULTS")
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".yaml")
		if only != "" && !strings.Contains(","+only+",", ","+name+",") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			sc, err := testnet.LoadFaultScenario(p)
			if err != nil {
				t.Fatal(err)
			}
			if name == "disk-full" && os.Geteuid() != 0 {
				t.Skip("needs root for a tmpfs")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var lg *slog.Logger
			if f := os.Getenv("DF_FAULTS_LOG"); f != "" {
				w, err := os.Create(f)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				lg = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			res, err := testnet.RunFaultScenario(ctx, t.TempDir(), sc, lg)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range res.Hosts {
				t.Logf("host %d: %s in %v (peers %d B, origin %d B, kept %d) %s", h.Host, h.Status, h.Duration.Round(time.Millisecond),
					h.FromPeers, h.FromSource, h.KeptPieces, h.Error)
			}
			t.Logf("origin %.2f×, served %d pieces, unverified served %d, rejected %d, %v", res.OriginRatio, res.Served,
				res.UnverifiedServed, res.Rejected, res.Elapsed.Round(time.Millisecond))
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
