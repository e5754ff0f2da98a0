package testnet_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/testnet"
)

func TestLoadScenario(t *testing.T) {
	good, err := filepath.Glob("scenarios/*.yaml")
	if err != nil || len(good) == 0 {
		t.Fatalf("no example scenarios: %v", err)
	}
	for _, path := range good {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if _, err := testnet.LoadScenario(path); err != nil {
				t.Fatal(err)
			}
		})
	}
	for name, want := range map[string]string{
		"bad-action.yaml":    "unknown action",
		"unknown-key.yaml":   "field hots not found",
		"bad-host.yaml":      "host 2",
		"bad-bandwidth.yaml": "bandwidth",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := testnet.LoadScenario(filepath.Join("testdata", name))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want one mentioning %q", err, want)
			}
		})
	}
}

func TestParseBandwidth(t *testing.T) {
	for in, want := range map[string]testnet.Bandwidth{"25Mbit": 3_125_000, "1Gbit": 125_000_000, "3MiB": 3 << 20, "1000": 1000, "100kbit": 12_500} {
		if got, err := testnet.ParseBandwidth(in); err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1Mbit", "1e9Gbit", "NaNMbit", "InfGbit"} {
		if _, err := testnet.ParseBandwidth(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// The scenarios CI runs: the small swarm (a few seconds), and with
// DF_TEST_SCENARIOS=1 the fault matrix (a lying peer, a host killed and one
// restarted mid-download, a slowed link; about 40 s): every surviving host
// ends with byte-identical content (RunSwarm checks it).
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("runs shaped swarms")
	}
	names := []string{"ci-small"}
	if os.Getenv("DF_TEST_SCENARIOS") != "" {
		names = append(names, "faults-8")
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			sc, err := testnet.LoadScenario(filepath.Join("scenarios", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			res, err := testnet.RunSwarm(ctx, t.TempDir(), sc.Spec())
			if err != nil {
				t.Fatal(err)
			}
			t.Log(res)
			if err := sc.Check(res); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// FuzzParseBandwidth: any string is parsed or refused, never negative.
func FuzzParseBandwidth(f *testing.F) {
	for _, s := range []string{"25Mbit", "1Gbit", "3MiB", "1000", "", "-1kbit", "1e308Gbit", "NaNMbit"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if b, err := testnet.ParseBandwidth(s); err == nil && b < 0 {
			t.Fatalf("%q parsed to %d", s, b)
		}
	})
}
