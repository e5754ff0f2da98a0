package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dragonfly-p2p/df/protocol/units"
)

// Bandwidth is a rate in bytes per second, written as "25Mbit", "1Gbit",
// "3MiB" (per second) or a plain number of bytes per second.
type Bandwidth int64

// UnmarshalYAML parses a bandwidth.
func (b *Bandwidth) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseBandwidth(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseBandwidth parses "25Mbit", "100Kbit", "1Gbit", or a byte size per
// second ("3MiB", "1000").
func ParseBandwidth(s string) (Bandwidth, error) {
	s = strings.TrimSpace(s)
	for suffix, mult := range map[string]float64{"kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8} {
		if strings.HasSuffix(strings.ToLower(s), suffix) {
			v, err := strconv.ParseFloat(strings.TrimSpace(s[:len(s)-len(suffix)]), 64)
			if err != nil || !(v >= 0 && v <= 1e6) { // also refuses NaN
				return 0, fmt.Errorf("bandwidth %q: want e.g. 25Mbit", s)
			}
			return Bandwidth(v * mult), nil
		}
	}
	var sz units.ByteSize
	if err := sz.Set(s); err != nil || sz < 0 {
		return 0, fmt.Errorf("bandwidth %q: want e.g. 25Mbit or 3MiB", s)
	}
	return Bandwidth(sz), nil
}

// Scenario is a swarm experiment as data (testnet/scenarios/*.yaml).
type Scenario struct {
	Name        string         `yaml:"name"`
	Description string         `yaml:"description"`
	Hosts       int            `yaml:"hosts"`
	Size        units.ByteSize `yaml:"size"`
	PieceLength units.ByteSize `yaml:"piece-length"`
	// Up and Down shape every host's link; OriginUp the origin's uplink.
	Up       Bandwidth     `yaml:"up"`
	Down     Bandwidth     `yaml:"down"`
	OriginUp Bandwidth     `yaml:"origin-up"`
	Latency  time.Duration `yaml:"latency"`
	Loss     float64       `yaml:"loss"`
	// Schedulers (0: DHT only); Seed adds a seed peer.
	Schedulers int  `yaml:"schedulers"`
	Seed       bool `yaml:"seed"`
	// Stagger starts host i's download i × Stagger after the first.
	Stagger time.Duration `yaml:"stagger"`
	// Baseline also runs every host straight to the origin (no P2P).
	Baseline bool `yaml:"baseline"`
	// BitTorrent also runs the same hosts as an aria2 + opentracker swarm
	// (skipped when they are not installed).
	BitTorrent bool `yaml:"bittorrent"`
	// Backend is where the hosts run: inprocess (default: nodes in this
	// process, userspace shaping) or netns (dfnode processes, one network
	// namespace each, tc shaping; root only).
	Backend string `yaml:"backend"`
	// IDCs splits the hosts into that many data centres (contiguous
	// blocks); InterIDC is the shared link between two of them, per
	// direction (0: unlimited). CompareUnconstrained also runs the same
	// swarm with an unlimited inter-IDC link.
	IDCs                 int       `yaml:"idcs"`
	InterIDC             Bandwidth `yaml:"inter-idc"`
	CompareUnconstrained bool      `yaml:"compare-unconstrained"`
	Events               []Event   `yaml:"events"`
	// Expect are assertions checked after the run.
	Expect Expect `yaml:"expect"`
}

// Event is one timeline action.
type Event struct {
	At     time.Duration `yaml:"at"`
	Action string        `yaml:"action"` // kill, restart, slow, corrupt
	Host   int           `yaml:"host"`
	// Up and Down are the new rates for "slow".
	Up   Bandwidth `yaml:"up"`
	Down Bandwidth `yaml:"down"`
}

// Expect are a scenario's pass conditions.
type Expect struct {
	// MaxOriginRatio bounds origin bytes / size (0: not checked).
	MaxOriginRatio float64 `yaml:"max-origin-ratio"`
	// MinEfficiency bounds T_bound / T_last from below (0: not checked).
	MinEfficiency float64 `yaml:"min-efficiency"`
	// MinIntraIDCRatio bounds the share of host-to-host bytes that stay
	// inside their IDC (0: not checked).
	MinIntraIDCRatio float64 `yaml:"min-intra-idc-ratio"`
	// MaxConstrainedSlowdown bounds the last host's time with the
	// inter-IDC constraint over the time without it (needs
	// compare-unconstrained; 0: not checked).
	MaxConstrainedSlowdown float64 `yaml:"max-constrained-slowdown"`
}

// LoadScenario reads a scenario file (strict: unknown keys are errors).
func LoadScenario(path string) (Scenario, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, err
	}
	var s Scenario
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Validate reports every problem at once.
func (s Scenario) Validate() error {
	var errs []error
	if s.Hosts < 1 || s.Hosts > 256 {
		errs = append(errs, fmt.Errorf("hosts: %d, want 1..256", s.Hosts))
	}
	if s.Size < 1 || s.Size > 16*units.GiB {
		errs = append(errs, fmt.Errorf("size: %v, want 1B..16GiB", s.Size))
	}
	if s.Loss < 0 || s.Loss >= 1 {
		errs = append(errs, fmt.Errorf("loss: %v, want [0, 1)", s.Loss))
	}
	if s.Latency < 0 || s.Latency > 10*time.Second || s.Stagger < 0 {
		errs = append(errs, errors.New("latency and stagger must be between 0 and 10s"))
	}
	if s.Schedulers < 0 || s.Schedulers > 8 {
		errs = append(errs, fmt.Errorf("schedulers: %d, want 0..8", s.Schedulers))
	}
	switch s.Backend {
	case "", "inprocess", "netns":
	default:
		errs = append(errs, fmt.Errorf("backend: %q, want inprocess or netns", s.Backend))
	}
	if s.IDCs < 0 || s.IDCs > 8 || (s.Hosts > 0 && s.IDCs > s.Hosts) {
		errs = append(errs, fmt.Errorf("idcs: %d, want 0..8 and at most one per host", s.IDCs))
	}
	if (s.CompareUnconstrained || s.Expect.MaxConstrainedSlowdown > 0) && s.IDCs < 2 {
		errs = append(errs, errors.New("compare-unconstrained and max-constrained-slowdown need idcs ≥ 2"))
	}
	if s.Expect.MaxConstrainedSlowdown > 0 && !s.CompareUnconstrained {
		errs = append(errs, errors.New("expect.max-constrained-slowdown needs compare-unconstrained: true"))
	}
	for i, e := range s.Events {
		switch e.Action {
		case "kill", "restart", "slow", "corrupt":
		default:
			errs = append(errs, fmt.Errorf("events[%d]: unknown action %q (kill, restart, slow, corrupt)", i, e.Action))
		}
		if e.Host < 0 || e.Host >= s.Hosts {
			errs = append(errs, fmt.Errorf("events[%d]: host %d, want 0..%d", i, e.Host, s.Hosts-1))
		}
		if e.At < 0 {
			errs = append(errs, fmt.Errorf("events[%d]: negative time", i))
		}
	}
	return errors.Join(errs...)
}

// Spec turns the scenario into a swarm run.
func (s Scenario) Spec() SwarmSpec {
	return SwarmSpec{Nodes: s.Hosts, Size: int64(s.Size), PieceLength: uint32(s.PieceLength),
		Up: int64(s.Up), Down: int64(s.Down), OriginUp: int64(s.OriginUp), Latency: s.Latency, Loss: s.Loss,
		Schedulers: s.Schedulers, Seed: s.Seed, Stagger: s.Stagger, Events: s.Events,
		IDCs: s.IDCs, InterIDC: int64(s.InterIDC), Backend: s.Backend}
}

// Check applies the scenario's expectations to a result.
func (s Scenario) Check(r SwarmResult) error {
	var errs []error
	if s.Expect.MaxOriginRatio > 0 && r.OriginRatio > s.Expect.MaxOriginRatio {
		errs = append(errs, fmt.Errorf("origin bytes %.3f × the size, expected ≤ %.3f", r.OriginRatio, s.Expect.MaxOriginRatio))
	}
	if s.Expect.MinEfficiency > 0 && r.Efficiency < s.Expect.MinEfficiency {
		errs = append(errs, fmt.Errorf("efficiency %.2f, expected ≥ %.2f", r.Efficiency, s.Expect.MinEfficiency))
	}
	if s.Expect.MinIntraIDCRatio > 0 && r.Traffic != nil {
		for _, idc := range r.Traffic.IDCs {
			if idc.IntraRatio < s.Expect.MinIntraIDCRatio {
				errs = append(errs, fmt.Errorf("%s kept %.3f of its host-to-host bytes inside, expected ≥ %.3f", idc.IDC, idc.IntraRatio, s.Expect.MinIntraIDCRatio))
			}
		}
	}
	return errors.Join(errs...)
}

// CheckSlowdown applies expect.max-constrained-slowdown to the last
// host's time with the inter-IDC constraint over the time without it.
func (s Scenario) CheckSlowdown(slowdown float64) error {
	if m := s.Expect.MaxConstrainedSlowdown; m > 0 && slowdown > m {
		return fmt.Errorf("the inter-IDC constraint slowed the last host %.2f×, expected ≤ %.2f×", slowdown, m)
	}
	return nil
}
