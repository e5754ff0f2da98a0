package testnet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
)

// A bridge keeps its fixed MAC as hosts join it: a MAC that followed the
// lowest port's changed under hosts that had resolved their gateway, and
// their traffic to the origin was lost until ARP expired (root only).
func TestBridgeMACSurvivesNewPorts(t *testing.T) {
	if err := NetnsAvailable(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	topo, err := newNetnsTopology(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.close(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := topo.setup(ctx, 0); err != nil {
		t.Fatal(err)
	}
	mac := func() string {
		out, err := output(ctx, "ip", "-n", topo.router(), "-j", "link", "show", "dev", bridgeOf(0))
		if err != nil {
			t.Fatal(err)
		}
		var links []struct {
			Address string `json:"address"`
		}
		if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
			t.Fatalf("ip link show: %v: %s", err, out)
		}
		return links[0].Address
	}
	for i := range 8 {
		if _, err := topo.endpoint(ctx, fmt.Sprintf("h%d", i), 0, ipIn(0, i+1), 0, 0); err != nil {
			t.Fatal(err)
		}
		if got, want := mac(), bridgeMAC(0); got != want {
			t.Fatalf("after %d hosts the gateway's MAC is %s, want %s", i+1, got, want)
		}
	}
}

func TestNodeLogLevel(t *testing.T) {
	cases := []struct {
		name string
		l    *slog.Logger
		want string
	}{
		{"no logger", nil, "info"},
		{"discarding", slog.New(slog.DiscardHandler), "info"},
		{"error", slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError})), "info"},
		{"debug", slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})), "debug"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := nodeLogLevel(tc.l); got != tc.want {
				t.Fatalf("nodeLogLevel = %q, want %q", got, tc.want)
			}
		})
	}
}
