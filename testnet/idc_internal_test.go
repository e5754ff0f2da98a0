package testnet

import (
	"strings"
	"testing"
)

func TestIDCOf(t *testing.T) {
	tests := []struct {
		name        string
		nodes, idcs int
		want        []int
	}{
		{"no IDCs", 3, 0, []int{0, 0, 0}},
		{"two of four", 4, 2, []int{0, 0, 1, 1}},
		{"two of five", 5, 2, []int{0, 0, 0, 1, 1}},
		{"three of three", 3, 3, []int{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := SwarmSpec{Nodes: tt.nodes, IDCs: tt.idcs}
			for i, want := range tt.want {
				if got := s.IDCOf(i); got != want {
					t.Errorf("host %d: IDC %d, want %d", i, got, want)
				}
			}
		})
	}
}

func TestNewTraffic(t *testing.T) {
	m := [][]int64{{900, 100}, {50, 950}} // [from][to]
	tr := newTraffic(SwarmSpec{Nodes: 4, IDCs: 2}, func(from, to int) int64 { return m[from][to] })
	if tr.PeerBytes != 2000 || tr.IntraIDC != 1850 || tr.InterIDC != 150 {
		t.Fatalf("traffic %+v", *tr)
	}
	if len(tr.IDCs) != 2 || tr.IDCs[0].IntraRatio != 0.9 || tr.IDCs[1].IntraRatio != 0.95 || tr.IDCs[1].Hosts != 2 {
		t.Fatalf("per IDC %+v", tr.IDCs)
	}
	one := newTraffic(SwarmSpec{Nodes: 2}, func(int, int) int64 { return 7 })
	if one.IntraRatio != 1 || one.IDCs != nil || one.PeerBytes != 7 {
		t.Fatalf("one IDC %+v", *one)
	}
}

func TestParseClassBytes(t *testing.T) {
	out := `class htb 1:10 root prio 0 rate 25Mbit ceil 25Mbit burst 1600b cburst 1600b 
 Sent 123456 bytes 100 pkt (dropped 3, overlimits 0 requeues 0) 
 backlog 0b 0p requeues 0
class htb 1:99 root prio 0 rate 10Gbit ceil 10Gbit burst 0b cburst 0b 
 Sent 42 bytes 1 pkt (dropped 0, overlimits 0 requeues 0) 
`
	got, err := parseClassBytes(out)
	if err != nil || got[10] != 123456 || got[99] != 42 || len(got) != 2 {
		t.Fatalf("%v, %v", got, err)
	}
	if _, err := parseClassBytes("class htb 1:x root\n"); err == nil {
		t.Fatal("a bad class id was accepted")
	}
}

func TestValidateBackendAndIDCs(t *testing.T) {
	base := Scenario{Hosts: 4, Size: 1 << 20}
	tests := []struct {
		name string
		edit func(*Scenario)
		want string // "" valid
	}{
		{"netns", func(s *Scenario) { s.Backend = "netns" }, ""},
		{"two IDCs compared", func(s *Scenario) {
			s.IDCs, s.CompareUnconstrained, s.Expect.MaxConstrainedSlowdown = 2, true, 1.2
		}, ""},
		{"unknown backend", func(s *Scenario) { s.Backend = "docker" }, "backend"},
		{"more IDCs than hosts", func(s *Scenario) { s.IDCs = 5 }, "idcs"},
		{"comparison without IDCs", func(s *Scenario) { s.CompareUnconstrained = true }, "need idcs"},
		{"slowdown without comparison", func(s *Scenario) { s.IDCs, s.Expect.MaxConstrainedSlowdown = 2, 1.2 }, "needs compare-unconstrained"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			tt.edit(&s)
			err := s.Validate()
			if tt.want == "" && err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
