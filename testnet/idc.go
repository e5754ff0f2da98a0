package testnet

import (
	"fmt"

	"github.com/dragonfly-p2p/df/testnet/shape"
)

// Traffic is what the hosts sent each other, by where it went: inside an
// IDC or across the inter-IDC link. Bytes to and from the origin are
// SwarmResult.OriginBytes; control traffic to schedulers is in neither.
type Traffic struct {
	// PeerBytes is every byte hosts sent to hosts (pieces, requests, ACKs).
	PeerBytes int64 `json:"peer_bytes"`
	IntraIDC  int64 `json:"intra_idc_bytes"`
	InterIDC  int64 `json:"inter_idc_bytes"`
	// IntraRatio is IntraIDC / PeerBytes (1 with a single IDC).
	IntraRatio float64 `json:"intra_idc_ratio"`
	// IDCs is the same per IDC, counted by the sending IDC.
	IDCs []IDCTraffic `json:"idcs,omitempty"`
	// InterDrops is the packets the inter-IDC link dropped (its queue full).
	InterDrops int64 `json:"inter_idc_drops,omitempty"`
}

// IDCTraffic is one IDC's share of Traffic.
type IDCTraffic struct {
	IDC        string  `json:"idc"`
	Hosts      int     `json:"hosts"`
	IntraIDC   int64   `json:"intra_idc_bytes"`
	InterIDC   int64   `json:"inter_idc_bytes"`
	IntraRatio float64 `json:"intra_idc_ratio"`
}

// IDCName is the --idc of IDC g.
func IDCName(g int) string { return fmt.Sprintf("idc%d", g) }

// groups is the number of IDCs (at least 1).
func (s SwarmSpec) groups() int { return max(s.IDCs, 1) }

// IDCOf returns host i's IDC: hosts are split into IDCs in contiguous
// blocks of (nearly) equal size. The seed peer, when there is one, is in
// IDC 0.
func (s SwarmSpec) IDCOf(host int) int {
	if s.Nodes <= 0 || host < 0 {
		return 0
	}
	return min(host*s.groups()/s.Nodes, s.groups()-1)
}

// newTraffic builds Traffic from a bytes(from, to) matrix of groups.
func newTraffic(spec SwarmSpec, bytes func(from, to int) int64) *Traffic {
	g := spec.groups()
	t := &Traffic{}
	hosts := make([]int, g)
	for i := range spec.Nodes {
		hosts[spec.IDCOf(i)]++
	}
	for from := range g {
		it := IDCTraffic{IDC: IDCName(from), Hosts: hosts[from]}
		for to := range g {
			if from == to {
				it.IntraIDC += bytes(from, to)
			} else {
				it.InterIDC += bytes(from, to)
			}
		}
		it.IntraRatio = ratio(it.IntraIDC, it.IntraIDC+it.InterIDC)
		t.IntraIDC += it.IntraIDC
		t.InterIDC += it.InterIDC
		t.IDCs = append(t.IDCs, it)
	}
	t.PeerBytes = t.IntraIDC + t.InterIDC
	t.IntraRatio = ratio(t.IntraIDC, t.PeerBytes)
	if g == 1 {
		t.IDCs = nil
	}
	return t
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// fabricTraffic reads an in-process run's fabric.
func fabricTraffic(spec SwarmSpec, f *shape.Fabric) *Traffic {
	t := newTraffic(spec, f.Bytes)
	for from := range f.Groups() {
		for to := range f.Groups() {
			if from != to {
				t.InterDrops += f.Dropped(from, to)
			}
		}
	}
	return t
}
