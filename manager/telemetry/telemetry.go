// Package telemetry keeps what schedulers report with their keepalives:
// the latest swarm summary of each scheduler (hosts with location, load
// and task counts) and a bounded ring of traffic samples, one per minute
// for 24 hours, built from the deltas of each scheduler's cumulative
// peer and back-to-source byte counters. Everything is in memory and
// bounded; a manager restart starts the ring afresh.
package telemetry

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol/dynclient"
)

// ErrInvalid wraps every reason a summary is refused.
var ErrInvalid = errors.New("invalid scheduler summary")

// Bounds.
const (
	// Minutes is the span of the traffic ring (one sample per minute).
	Minutes = 24 * 60
	// MaxSchedulers bounds the schedulers whose summaries are kept.
	MaxSchedulers = 1024
	// MaxCount bounds host, task and peer counts in a summary.
	MaxCount = 10_000_000
	// MaxCounter bounds the cumulative byte counters (2^62: no overflow
	// when summed).
	MaxCounter = 1 << 62
	// MaxRate bounds upload capacity and rate (bit/s): 10 Tbit/s.
	MaxRate = 10_000_000_000_000
	// MaxUploads bounds in-flight and maximum uploads of a host.
	MaxUploads = 1 << 16
	// MaxHostTasks bounds the tasks one host holds or downloads.
	MaxHostTasks = 1 << 20
)

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

func checkText(what, s string, maxLen int) error {
	if len(s) > maxLen || !utf8.ValidString(s) {
		return bad("%s longer than %d bytes or not UTF-8", what, maxLen)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return bad("%s contains a control character", what)
		}
	}
	return nil
}

// Validate checks every field and list of a summary against its bounds.
func Validate(s *dynclient.SchedulerSummary, now time.Time) error {
	if s.Started.IsZero() || s.Started.After(now.Add(time.Hour)) || s.Started.Year() < 2000 {
		return bad("started must be the scheduler's start time (set, not in the future)")
	}
	if s.PeerBytes > MaxCounter || s.SourceBytes > MaxCounter {
		return bad("byte counters must be at most %d", uint64(MaxCounter))
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"host_count", s.HostCount}, {"task_count", s.TaskCount}, {"peer_count", s.PeerCount}} {
		if c.v < 0 || c.v > MaxCount {
			return bad("%s must be 0..%d", c.name, MaxCount)
		}
	}
	if len(s.Hosts) > dynclient.MaxSummaryHosts {
		return bad("%d hosts listed, limit %d", len(s.Hosts), dynclient.MaxSummaryHosts)
	}
	if len(s.Hosts) > s.HostCount {
		return bad("%d hosts listed but host_count is %d", len(s.Hosts), s.HostCount)
	}
	seen := make(map[string]bool, len(s.Hosts))
	for i := range s.Hosts {
		if err := validHost(&s.Hosts[i], now); err != nil {
			return fmt.Errorf("host %d: %w", i, err)
		}
		if seen[s.Hosts[i].ID] {
			return bad("host %s listed twice", s.Hosts[i].ID)
		}
		seen[s.Hosts[i].ID] = true
	}
	return nil
}

func validHost(h *dynclient.HostSummary, now time.Time) error {
	if len(h.ID) > 128 {
		return bad("id too long")
	}
	if _, err := peer.Decode(h.ID); err != nil {
		return bad("id must be a libp2p peer ID")
	}
	if err := checkText("hostname", h.Hostname, 253); err != nil {
		return err
	}
	if err := checkText("idc", h.IDC, 128); err != nil {
		return err
	}
	if len(h.Location) > dynclient.MaxSummaryLocPart {
		return bad("location has %d parts, limit %d", len(h.Location), dynclient.MaxSummaryLocPart)
	}
	total := 0
	for _, p := range h.Location {
		if err := checkText("location part", p, 64); err != nil {
			return err
		}
		total += len(p)
	}
	if total > 256 {
		return bad("location longer than 256 bytes")
	}
	if h.Type != dynclient.HostTypeSeed && h.Type != dynclient.HostTypeNormal {
		return bad("type must be %q or %q", dynclient.HostTypeSeed, dynclient.HostTypeNormal)
	}
	if h.UploadCapacity > MaxRate || h.UploadRate > MaxRate {
		return bad("upload capacity and rate must be at most %d bit/s", uint64(MaxRate))
	}
	if h.InFlight > MaxUploads || h.MaxUploads > MaxUploads {
		return bad("in_flight and max_uploads must be at most %d", MaxUploads)
	}
	if h.Tasks < 0 || h.Tasks > MaxHostTasks || h.TasksDone < 0 || h.TasksDone > h.Tasks {
		return bad("tasks must be 0..%d and tasks_done 0..tasks", MaxHostTasks)
	}
	if h.LastSeen.IsZero() || h.LastSeen.After(now.Add(time.Hour)) {
		return bad("last_seen must be set and not in the future")
	}
	return nil
}

// Sample is the traffic of one minute, summed over schedulers.
type Sample struct {
	Time        time.Time `json:"time"` // start of the minute (UTC)
	PeerBytes   uint64    `json:"peer_bytes"`
	SourceBytes uint64    `json:"source_bytes"`
}

// SchedulerState is the latest summary of one scheduler, without hosts.
type SchedulerState struct {
	ID             string    `json:"id"`
	Cluster        string    `json:"cluster"`
	Hostname       string    `json:"hostname"`
	Received       time.Time `json:"received"`
	Started        time.Time `json:"started"`
	PeerBytes      uint64    `json:"peer_bytes"`
	SourceBytes    uint64    `json:"source_bytes"`
	HostCount      int       `json:"host_count"`
	TaskCount      int       `json:"task_count"`
	PeerCount      int       `json:"peer_count"`
	HostsListed    int       `json:"hosts_listed"`
	HostsTruncated bool      `json:"hosts_truncated"`
}

// Host is one dfnode host with the scheduler that reported it.
type Host struct {
	dynclient.HostSummary
	Scheduler string `json:"scheduler"` // scheduler's peer ID
	Cluster   string `json:"cluster"`
}

type bucket struct {
	minute       int64 // unix minute; a stale bucket reads as zero
	peer, source uint64
}

type sched struct {
	state SchedulerState
	hosts []dynclient.HostSummary
}

// Recorder keeps the latest summaries and the traffic ring. Safe for
// concurrent use.
type Recorder struct {
	ttl time.Duration

	mu     sync.Mutex
	scheds map[string]*sched
	ring   [Minutes]bucket
}

// New returns a recorder; summaries older than ttl are not listed (and
// are dropped to make room for new schedulers).
func New(ttl time.Duration) *Recorder {
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	return &Recorder{ttl: ttl, scheds: map[string]*sched{}}
}

// Record stores scheduler id's summary received at now and adds the
// traffic since its previous summary to the ring. The first summary of a
// scheduler only sets the baseline (its counters may cover days before
// the manager knew it); a new Started time or counters that went down
// mean the scheduler restarted, and everything counted since is new.
// s must have passed Validate.
func (r *Recorder) Record(id, cluster, hostname string, s *dynclient.SchedulerSummary, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, ok := r.scheds[id]
	if !ok && len(r.scheds) >= MaxSchedulers {
		r.evict(now)
		if len(r.scheds) >= MaxSchedulers {
			return bad("summaries of %d schedulers kept already", MaxSchedulers)
		}
	}
	if ok {
		dp, ds := s.PeerBytes, s.SourceBytes
		p := prev.state
		if s.Started.Equal(p.Started) && s.PeerBytes >= p.PeerBytes && s.SourceBytes >= p.SourceBytes {
			dp, ds = s.PeerBytes-p.PeerBytes, s.SourceBytes-p.SourceBytes
		}
		if dp > 0 || ds > 0 {
			b := r.bucket(now)
			b.peer, b.source = satAdd(b.peer, dp), satAdd(b.source, ds)
		}
	}
	r.scheds[id] = &sched{
		state: SchedulerState{ID: id, Cluster: cluster, Hostname: hostname, Received: now.UTC(), Started: s.Started.UTC(),
			PeerBytes: s.PeerBytes, SourceBytes: s.SourceBytes, HostCount: s.HostCount, TaskCount: s.TaskCount,
			PeerCount: s.PeerCount, HostsListed: len(s.Hosts), HostsTruncated: s.HostsTruncated},
		hosts: slices.Clone(s.Hosts),
	}
	return nil
}

// Forget drops a scheduler's summary (its traffic stays in the ring).
func (r *Recorder) Forget(id string) {
	r.mu.Lock()
	delete(r.scheds, id)
	r.mu.Unlock()
}

func (r *Recorder) evict(now time.Time) {
	for id, s := range r.scheds {
		if now.Sub(s.state.Received) > r.ttl {
			delete(r.scheds, id)
		}
	}
}

// satAdd adds without wrapping around (1,024 schedulers each reporting
// the largest delta would overflow a plain sum).
func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func (r *Recorder) bucket(now time.Time) *bucket {
	m := now.Unix() / 60
	b := &r.ring[m%Minutes]
	if b.minute != m {
		*b = bucket{minute: m}
	}
	return b
}

// Traffic returns the samples of the last n minutes (1..Minutes), oldest
// first, one per minute including the current one.
func (r *Recorder) Traffic(now time.Time, n int) []Sample {
	n = min(max(n, 1), Minutes)
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := now.Unix() / 60
	out := make([]Sample, 0, n)
	for m := cur - int64(n) + 1; m <= cur; m++ {
		s := Sample{Time: time.Unix(m*60, 0).UTC()}
		if b := r.ring[m%Minutes]; b.minute == m {
			s.PeerBytes, s.SourceBytes = b.peer, b.source
		}
		out = append(out, s)
	}
	return out
}

// Schedulers returns the fresh summaries (received within the TTL), by ID.
func (r *Recorder) Schedulers(now time.Time) []SchedulerState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]SchedulerState, 0, len(r.scheds))
	for _, s := range r.scheds {
		if now.Sub(s.state.Received) <= r.ttl {
			out = append(out, s.state)
		}
	}
	slices.SortFunc(out, func(a, b SchedulerState) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// HostFilter selects hosts; empty fields match everything.
type HostFilter struct {
	Cluster, Scheduler, IDC, Type string
	Location                      string // prefix of the location parts joined by "|"
	Hostname                      string // substring
}

func (f HostFilter) match(cluster, schedID string, h *dynclient.HostSummary) bool {
	return (f.Cluster == "" || f.Cluster == cluster) && (f.Scheduler == "" || f.Scheduler == schedID) &&
		(f.IDC == "" || f.IDC == h.IDC) && (f.Type == "" || f.Type == h.Type) &&
		(f.Location == "" || strings.HasPrefix(strings.Join(h.Location, "|"), f.Location)) &&
		(f.Hostname == "" || strings.Contains(h.Hostname, f.Hostname))
}

// Hosts returns the hosts of the fresh summaries that match f, by
// hostname then ID. A host known to two schedulers is listed once, as the
// one that saw it last reports it.
func (r *Recorder) Hosts(now time.Time, f HostFilter) []Host {
	r.mu.Lock()
	defer r.mu.Unlock()
	byID := map[string]int{}
	var out []Host
	for id, s := range r.scheds {
		if now.Sub(s.state.Received) > r.ttl {
			continue
		}
		for i := range s.hosts {
			h := &s.hosts[i]
			if !f.match(s.state.Cluster, id, h) {
				continue
			}
			if j, ok := byID[h.ID]; ok {
				if h.LastSeen.After(out[j].LastSeen) {
					out[j] = Host{HostSummary: *h, Scheduler: id, Cluster: s.state.Cluster}
				}
				continue
			}
			byID[h.ID] = len(out)
			out = append(out, Host{HostSummary: *h, Scheduler: id, Cluster: s.state.Cluster})
		}
	}
	slices.SortFunc(out, func(a, b Host) int {
		if c := strings.Compare(a.Hostname, b.Hostname); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}
