package telemetry

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/protocol/dynclient"
)

var (
	t0   = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	pidA = "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"
	pidB = "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE"
)

func host(id, name string) dynclient.HostSummary {
	return dynclient.HostSummary{ID: id, Hostname: name, IDC: "idc-1", Location: []string{"eu", "fra"},
		Type: dynclient.HostTypeNormal, UploadCapacity: 1e9, UploadRate: 1e8, InFlight: 2, MaxUploads: 16,
		Tasks: 3, TasksDone: 2, LastSeen: t0}
}

func summary(peerB, srcB uint64, hosts ...dynclient.HostSummary) *dynclient.SchedulerSummary {
	return &dynclient.SchedulerSummary{Started: t0.Add(-time.Hour), PeerBytes: peerB, SourceBytes: srcB,
		HostCount: len(hosts), TaskCount: 3, PeerCount: 3, Hosts: hosts}
}

func TestValidateRefusesBadSummaries(t *testing.T) {
	many := make([]dynclient.HostSummary, dynclient.MaxSummaryHosts+1)
	for i := range many {
		many[i] = host(pidA, fmt.Sprint("h", i))
	}
	tests := []struct {
		name string
		edit func(s *dynclient.SchedulerSummary)
		want string // "" valid
	}{
		{"valid", func(s *dynclient.SchedulerSummary) {}, ""},
		{"no start time", func(s *dynclient.SchedulerSummary) { s.Started = time.Time{} }, "started"},
		{"start in the future", func(s *dynclient.SchedulerSummary) { s.Started = t0.Add(48 * time.Hour) }, "started"},
		{"huge counter", func(s *dynclient.SchedulerSummary) { s.PeerBytes = 1 << 63 }, "byte counters"},
		{"negative count", func(s *dynclient.SchedulerSummary) { s.TaskCount = -1 }, "task_count"},
		{"huge count", func(s *dynclient.SchedulerSummary) { s.PeerCount = MaxCount + 1 }, "peer_count"},
		{"too many hosts", func(s *dynclient.SchedulerSummary) { s.Hosts, s.HostCount = many, len(many) }, "limit 1000"},
		{"more hosts than counted", func(s *dynclient.SchedulerSummary) { s.HostCount = 0 }, "host_count"},
		{"bad peer id", func(s *dynclient.SchedulerSummary) { s.Hosts[0].ID = "not-a-peer" }, "peer ID"},
		{"long hostname", func(s *dynclient.SchedulerSummary) { s.Hosts[0].Hostname = strings.Repeat("a", 254) }, "hostname"},
		{"control character", func(s *dynclient.SchedulerSummary) { s.Hosts[0].IDC = "a\nb" }, "control"},
		{"bad UTF-8", func(s *dynclient.SchedulerSummary) { s.Hosts[0].Hostname = "\xff" }, "UTF-8"},
		{"too many location parts", func(s *dynclient.SchedulerSummary) { s.Hosts[0].Location = make([]string, 6) }, "parts"},
		{"long location part", func(s *dynclient.SchedulerSummary) { s.Hosts[0].Location = []string{strings.Repeat("x", 65)} }, "location part"},
		{"unknown type", func(s *dynclient.SchedulerSummary) { s.Hosts[0].Type = "super" }, "type"},
		{"absurd rate", func(s *dynclient.SchedulerSummary) { s.Hosts[0].UploadRate = MaxRate + 1 }, "rate"},
		{"absurd uploads", func(s *dynclient.SchedulerSummary) { s.Hosts[0].InFlight = MaxUploads + 1 }, "in_flight"},
		{"done over tasks", func(s *dynclient.SchedulerSummary) { s.Hosts[0].TasksDone = 4 }, "tasks"},
		{"negative tasks", func(s *dynclient.SchedulerSummary) { s.Hosts[0].Tasks = -1 }, "tasks"},
		{"no last seen", func(s *dynclient.SchedulerSummary) { s.Hosts[0].LastSeen = time.Time{} }, "last_seen"},
		{"duplicate host", func(s *dynclient.SchedulerSummary) {
			s.Hosts = append(s.Hosts, s.Hosts[0])
			s.HostCount = 2
		}, "twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := summary(1, 1, host(pidA, "a"))
			tc.edit(s)
			err := Validate(s, t0)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid summary refused: %v", err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}

func total(r *Recorder, now time.Time) (p, s uint64) {
	for _, x := range r.Traffic(now, Minutes) {
		p += x.PeerBytes
		s += x.SourceBytes
	}
	return p, s
}

func TestTrafficDeltasSurviveRestarts(t *testing.T) {
	r := New(5 * time.Minute)
	rec := func(at time.Time, s *dynclient.SchedulerSummary) {
		t.Helper()
		if err := r.Record(pidA, "c1", "s1", s, at); err != nil {
			t.Fatal(err)
		}
	}
	// First summary: baseline only (the counters cover time before the manager knew).
	rec(t0, summary(1000, 500))
	if p, s := total(r, t0); p != 0 || s != 0 {
		t.Fatalf("baseline counted: %d %d", p, s)
	}
	rec(t0.Add(time.Minute), summary(1600, 700))
	rec(t0.Add(2*time.Minute), summary(1600, 700)) // nothing new
	if p, s := total(r, t0.Add(2*time.Minute)); p != 600 || s != 200 {
		t.Fatalf("after one delta: %d %d, want 600 200", p, s)
	}
	// Restart with a new start time: counters begin at zero again; all of it is new.
	re := summary(50, 10)
	re.Started = t0.Add(2 * time.Minute)
	rec(t0.Add(3*time.Minute), re)
	// Counters that went down with the same start time (a clock that did not move): also a restart.
	down := summary(20, 5)
	down.Started = re.Started
	rec(t0.Add(4*time.Minute), down)
	if p, s := total(r, t0.Add(4*time.Minute)); p != 600+50+20 || s != 200+10+5 {
		t.Fatalf("after restarts: %d %d, want 670 215", p, s)
	}
	got := r.Traffic(t0.Add(4*time.Minute), 5)
	want := []uint64{0, 600, 0, 50, 20}
	for i, x := range got {
		if x.PeerBytes != want[i] || !x.Time.Equal(t0.Add(time.Duration(i)*time.Minute)) {
			t.Fatalf("sample %d: %+v, want %d bytes at %s", i, x, want[i], t0.Add(time.Duration(i)*time.Minute))
		}
	}
	// 24 hours later the ring has forgotten all of it, though its slots were reused.
	later := t0.Add(Minutes*time.Minute + 4*time.Minute)
	if p, s := total(r, later); p != 0 || s != 0 {
		t.Fatalf("a day later: %d %d", p, s)
	}
	rec(later, summary(100, 100)) // restart again at the same slot as an old sample
	if p, _ := total(r, later); p != 100 {
		t.Fatalf("reused slot holds %d, want 100", p)
	}
}

func TestHostsAreFreshFilteredAndDeduplicated(t *testing.T) {
	r := New(time.Minute)
	a, b := host(pidA, "alpha"), host(pidB, "beta")
	b.Type, b.IDC, b.Location = dynclient.HostTypeSeed, "idc-2", []string{"us"}
	if err := r.Record("sched-1", "c1", "s1", summary(0, 0, a, b), t0); err != nil {
		t.Fatal(err)
	}
	newer := a
	newer.LastSeen, newer.Tasks = t0.Add(time.Second), 9
	if err := r.Record("sched-2", "c2", "s2", summary(0, 0, newer), t0); err != nil {
		t.Fatal(err)
	}
	hs := r.Hosts(t0, HostFilter{})
	if len(hs) != 2 || hs[0].Hostname != "alpha" || hs[0].Tasks != 9 || hs[0].Scheduler != "sched-2" || hs[1].Cluster != "c1" {
		t.Fatalf("hosts: %+v", hs)
	}
	for _, tc := range []struct {
		name string
		f    HostFilter
		want int
	}{
		{"cluster", HostFilter{Cluster: "c1"}, 2},
		{"idc", HostFilter{IDC: "idc-2"}, 1},
		{"type", HostFilter{Type: dynclient.HostTypeSeed}, 1},
		{"location prefix", HostFilter{Location: "eu|f"}, 1},
		{"hostname", HostFilter{Hostname: "et"}, 1},
		{"scheduler", HostFilter{Scheduler: "sched-9"}, 0},
	} {
		if got := len(r.Hosts(t0, tc.f)); got != tc.want {
			t.Errorf("%s: %d hosts, want %d", tc.name, got, tc.want)
		}
	}
	if hs := r.Hosts(t0.Add(2*time.Minute), HostFilter{}); len(hs) != 0 {
		t.Fatalf("stale summaries listed: %+v", hs)
	}
	if ss := r.Schedulers(t0); len(ss) != 2 || ss[0].ID != "sched-1" || ss[0].HostsListed != 2 {
		t.Fatalf("schedulers: %+v", ss)
	}
}

func TestHugeDeltasSaturate(t *testing.T) {
	r := New(time.Minute)
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		_ = r.Record(id, "c", "h", summary(0, 0), t0)
		if err := r.Record(id, "c", "h", summary(MaxCounter, 0), t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if s := r.Traffic(t0, 1); s[0].PeerBytes != math.MaxUint64 {
		t.Fatalf("5 × 2^62 bytes summed to %d, want saturation", s[0].PeerBytes)
	}
}

func TestSchedulersAreBounded(t *testing.T) {
	r := New(time.Minute)
	for i := range MaxSchedulers {
		if err := r.Record(fmt.Sprint("s", i), "c", "h", summary(0, 0), t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Record("one-more", "c", "h", summary(0, 0), t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("scheduler over the bound: %v", err)
	}
	// Stale ones make room.
	if err := r.Record("one-more", "c", "h", summary(0, 0), t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
}
