package evaluator

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/scheduler/resource"
)

func parentWithCosts(t *testing.T, costs ...time.Duration) *resource.Peer {
	t.Helper()
	st := resource.NewStore(resource.Limits{})
	h, err := st.UpsertHost(peer.ID("parent"), protocol.HostInfo{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.AddPeer(h, st.EnsureTask(protocol.TaskID{1}, time.Now()), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p.State = resource.PeerRunning
	for _, c := range costs {
		p.AddCost(c, 64)
	}
	return p
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d + time.Duration(i%3)*time.Millisecond
	}
	return out
}

func TestIsBadParent(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name  string
		costs []time.Duration
		state resource.PeerState
		want  bool
	}{
		{name: "no samples", want: false},
		{name: "steady", costs: repeat(100*ms, 20), want: false},
		{name: "last far above mean+3σ", costs: append(repeat(100*ms, 20), 2*time.Second), want: true},
		{name: "few samples, last 20× the mean", costs: []time.Duration{10 * ms, 10 * ms, 5 * time.Second}, want: true},
		{name: "few samples, last 3× the mean", costs: []time.Duration{10 * ms, 10 * ms, 30 * ms}, want: false},
		{name: "failed", state: resource.PeerFailed, want: true},
		{name: "left", state: resource.PeerLeft, want: true},
	}
	e := New(DefaultWeights())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := parentWithCosts(t, tc.costs...)
			if tc.state != 0 {
				p.State = tc.state
			}
			if got := e.IsBadParent(p); got != tc.want {
				n, mean, sd, last := p.CostStats()
				t.Fatalf("IsBadParent = %v, want %v (n %d mean %.0f sd %.0f last %.0f)", got, tc.want, n, mean, sd, last)
			}
		})
	}
}

func TestLocationAffinity(t *testing.T) {
	cases := []struct {
		name string
		a, b []string
		want float64
	}{
		{"identical", []string{"cn", "zj", "hz"}, []string{"cn", "zj", "hz"}, 1},
		{"case-insensitive", []string{"CN", "zj"}, []string{"cn", "ZJ"}, 1},
		{"two of five", []string{"cn", "zj", "hz", "z1", "c1"}, []string{"cn", "zj", "nb", "z1", "c1"}, 0.4},
		{"unknown", nil, []string{"cn"}, 0},
		{"different", []string{"us"}, []string{"cn"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := locationAffinity(tc.a, tc.b); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWeightsValidate(t *testing.T) {
	if err := DefaultWeights().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]Weights{"all zero": {}, "negative": {Load: -1, RTT: 1}, "huge": {Load: 1e9}} {
		if w.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
