// Package evaluator ranks candidate parents for a child peer and detects
// bad parents.
//
// The score is a weighted sum of factors in [0, 1]:
//
//   - load: free upload bandwidth (announced rate plus what the scheduler
//     booked since) and free upload slots;
//   - rtt: measured round trip between the two hosts (nodes probe each
//     other on the scheduler's request), 1 at 0 ms falling to 0 at
//     RTTHorizon; hosts never measured score from their topology instead;
//   - idc: 1 when both hosts name the same IDC;
//   - location: shared leading parts of country|province|city|zone|cluster;
//   - pieces: share of the task the parent holds (more to offer, longer);
//   - host type: normal peers before seeds, so that seeds serve the first
//     copies and the swarm serves the rest.
//
// Dragonfly's default is 0.6 load + 0.2 IDC + 0.1 location + 0.1 host type
// and no RTT. Ours weighs measured RTT and pieces held because both predict
// a piece's transfer time better than labels do; labels still matter for
// keeping traffic inside an IDC when its links are the constraint.
package evaluator

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dragonfly-p2p/df/scheduler/resource"
)

// Weights of the score's factors.
type Weights struct {
	Load     float64 `yaml:"load"`
	RTT      float64 `yaml:"rtt"`
	IDC      float64 `yaml:"idc"`
	Location float64 `yaml:"location"`
	Pieces   float64 `yaml:"pieces"`
	HostType float64 `yaml:"host-type"`
}

// DefaultWeights are the defaults (see the package comment and
// docs/scheduler.md).
func DefaultWeights() Weights {
	return Weights{Load: 0.35, RTT: 0.2, IDC: 0.15, Location: 0.1, Pieces: 0.15, HostType: 0.05}
}

// Validate checks the weights.
func (w Weights) Validate() error {
	sum := 0.0
	for _, v := range []float64{w.Load, w.RTT, w.IDC, w.Location, w.Pieces, w.HostType} {
		if v < 0 || v > 100 {
			return fmt.Errorf("weight %v outside [0, 100]", v)
		}
		sum += v
	}
	if sum == 0 {
		return errors.New("all weights are zero")
	}
	return nil
}

// Evaluator scores parents.
type Evaluator struct {
	w          Weights
	rttHorizon time.Duration
	minSamples int
}

// Option configures New.
type Option func(*Evaluator)

// WithRTTHorizon sets the RTT that scores 0 (default 200 ms).
func WithRTTHorizon(d time.Duration) Option { return func(e *Evaluator) { e.rttHorizon = d } }

// New returns an evaluator.
func New(w Weights, opts ...Option) *Evaluator {
	e := &Evaluator{w: w, rttHorizon: 200 * time.Millisecond, minSamples: 8}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Score rates parent for child: higher is better.
func (e *Evaluator) Score(child, parent *resource.Peer) float64 {
	ch, ph := child.Host, parent.Host
	load := ph.FreeUpload()
	if slots := ph.FreeSlots(); ph.Info.MaxUploads > 0 {
		load = 0.7*load + 0.3*float64(slots)/float64(ph.Info.MaxUploads)
	}
	idc := 0.0
	if ch.Info.IDC != "" && strings.EqualFold(ch.Info.IDC, ph.Info.IDC) {
		idc = 1
	}
	loc := locationAffinity(ch.Info.Location, ph.Info.Location)
	rtt := (idc + loc) / 2 // no measurement: topology stands in for distance
	if d, ok := ph.RTT(ch.ID); ok {
		rtt = max(0, 1-float64(d)/float64(e.rttHorizon))
	}
	pieces := 0.0
	if n := parent.Task.PieceCount(); n > 0 {
		pieces = float64(parent.Held()) / float64(n)
	}
	if parent.State == resource.PeerSucceeded {
		pieces = 1
	}
	typ := 1.0
	if ph.Seed() {
		typ = 0.5
	}
	return e.w.Load*load + e.w.RTT*rtt + e.w.IDC*idc + e.w.Location*loc + e.w.Pieces*pieces + e.w.HostType*typ
}

// locationAffinity is the share of leading location parts both hosts have
// in common (1 when identical, 0 when either is unknown).
func locationAffinity(a, b []string) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	n := 0
	for n < len(a) && n < len(b) && strings.EqualFold(a[n], b[n]) {
		n++
	}
	if n == len(a) && n == len(b) {
		return 1
	}
	return float64(n) / float64(resourceLocationParts)
}

const resourceLocationParts = 5

// IsBadParent reports whether a parent should not be offered: it failed or
// left, or its last piece cost is far above its recent mean (mean + 3σ with
// a full enough window, 20 × mean with a few samples).
func (e *Evaluator) IsBadParent(p *resource.Peer) bool {
	switch p.State {
	case resource.PeerFailed, resource.PeerLeft:
		return true
	}
	n, mean, sd, last := p.CostStats()
	switch {
	case n < 1:
		return false
	case n < e.minSamples:
		return last > 20*mean
	}
	return last > mean+3*sd && last > 1.5*mean
}
