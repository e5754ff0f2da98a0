package resource

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
)

var t0 = time.Unix(1_700_000_000, 0)

func hostID(i int) peer.ID { return peer.ID([]byte{byte(i >> 8), byte(i)}) }

func TestTasksPerHostAreBounded(t *testing.T) {
	s := NewStore(Limits{MaxTasksPerHost: 3})
	h, _ := s.UpsertHost(hostID(1), protocol.HostInfo{}, t0)
	for i := range 3 {
		if _, err := s.AddPeer(h, s.EnsureTask(protocol.TaskID{byte(i)}, t0), t0); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.AddPeer(h, s.EnsureTask(protocol.TaskID{9}, t0), t0)
	if !errors.Is(err, ErrTooManyTasks) {
		t.Fatalf("4th task: %v, want ErrTooManyTasks", err)
	}
	// Re-registering an existing one is fine.
	if _, err := s.AddPeer(h, s.Task(protocol.TaskID{0}), t0); err != nil {
		t.Fatal(err)
	}
}

func TestLayoutConflictRefused(t *testing.T) {
	s := NewStore(Limits{})
	task := s.EnsureTask(protocol.TaskID{1}, t0)
	a, _ := protocol.NewLayout(10<<20, 1<<20)
	b, _ := protocol.NewLayout(10<<20, 4<<20)
	if err := task.SetLayout(a); err != nil {
		t.Fatal(err)
	}
	if err := task.SetLayout(b); !errors.Is(err, ErrLayoutConflict) {
		t.Fatalf("got %v, want ErrLayoutConflict", err)
	}
}

func TestGCReleasesVanishedState(t *testing.T) {
	pol := GCPolicy{HostTTL: time.Minute, PieceDownloadTimeout: time.Minute, PeerTTL: time.Hour, DoneTTL: time.Minute, TaskTTL: time.Minute}
	s := NewStore(Limits{})
	gone, _ := s.UpsertHost(hostID(1), protocol.HostInfo{}, t0) // no stream, stops announcing
	live, _ := s.UpsertHost(hostID(2), protocol.HostInfo{}, t0)
	live.Push = func(*pb.ScheduleResponse) bool { return true }
	task := s.EnsureTask(protocol.TaskID{1}, t0)
	if _, err := s.AddPeer(gone, task, t0); err != nil {
		t.Fatal(err)
	}
	stuck, _ := s.AddPeer(live, task, t0)
	stuck.State = PeerRunning

	st := s.GC(t0.Add(2*time.Minute), pol)
	if st.Hosts != 1 || s.Host(gone.ID) != nil || s.Host(live.ID) == nil {
		t.Fatalf("hosts after GC: %+v", st)
	}
	if st.Stuck != 1 || stuck.State != PeerFailed {
		t.Fatalf("stuck peer not failed: %+v, state %v", st, stuck.State)
	}
	st = s.GC(t0.Add(4*time.Minute), pol)
	if st.Peers != 1 || task.Peers() != 0 {
		t.Fatalf("failed peer not released: %+v", st)
	}
	st = s.GC(t0.Add(6*time.Minute), pol)
	if st.Tasks != 1 || s.Task(task.ID) != nil {
		t.Fatalf("empty task not released: %+v", st)
	}
	if h, tk, p := s.Counts(); h != 1 || tk != 0 || p != 0 {
		t.Fatalf("counts %d %d %d", h, tk, p)
	}
}

func TestSampleIsUniformAndDistinct(t *testing.T) {
	s := NewStore(Limits{})
	task := s.EnsureTask(protocol.TaskID{1}, t0)
	for i := range 100 {
		h, _ := s.UpsertHost(hostID(i), protocol.HostInfo{}, t0)
		if _, err := s.AddPeer(h, task, t0); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	hits := map[*Peer]int{}
	for range 1000 {
		seen := map[*Peer]bool{}
		task.Sample(r, 10, func(p *Peer) bool {
			if seen[p] {
				t.Fatal("a peer sampled twice")
			}
			seen[p] = true
			hits[p]++
			return true
		})
		if len(seen) != 10 {
			t.Fatalf("sampled %d, want 10", len(seen))
		}
	}
	for p, n := range hits {
		if n < 50 || n > 160 { // expected 100
			t.Fatalf("peer %s sampled %d times of 1000 rounds", p.Host.ID, n)
		}
	}
	// Removing peers keeps the sample index consistent.
	for i := range 50 {
		s.RemovePeer(task.Peer(hostID(i)))
	}
	count := 0
	task.Sample(r, 100, func(*Peer) bool { count++; return true })
	if count != 50 || task.Peers() != 50 {
		t.Fatalf("after removals: sampled %d of %d", count, task.Peers())
	}
}

// storeWithPeers returns a store with one task and n peers of it, each on
// its own host.
func storeWithPeers(n int) (*Store, *Task, []*Peer) {
	s := NewStore(Limits{})
	task := s.EnsureTask(protocol.TaskID{1}, t0)
	var ps []*Peer
	for i := range n {
		h, _ := s.UpsertHost(hostID(i), protocol.HostInfo{}, t0)
		p, _ := s.AddPeer(h, task, t0)
		ps = append(ps, p)
	}
	return s, task, ps
}

func TestCycleDetection(t *testing.T) {
	s, _, ps := storeWithPeers(4)
	// 0 → 1 → 2 (edges child→parent: 1's parent is 0, 2's parent is 1)
	s.AddEdge(ps[1], ps[0], 0, 0)
	s.AddEdge(ps[2], ps[1], 0, 0)
	if !ps[0].IsAncestorOf(ps[2]) || ps[2].IsAncestorOf(ps[0]) || ps[3].IsAncestorOf(ps[2]) {
		t.Fatal("ancestry wrong")
	}
	s.RemovePeer(ps[1])
	if ps[0].IsAncestorOf(ps[2]) || ps[0].Children() != 0 {
		t.Fatal("edges survive a removed peer")
	}
}

// MeanParents follows every way an edge comes and goes: added, the
// child's parents cleared, and a peer removed as child or as parent.
func TestMeanParentsCountsEdges(t *testing.T) {
	s, task, ps := storeWithPeers(4)
	steps := []struct {
		name string
		do   func()
		want float64
	}{
		{"no edges", func() {}, 0},
		{"three edges", func() {
			s.AddEdge(ps[1], ps[0], 0, 0)
			s.AddEdge(ps[2], ps[0], 0, 0)
			s.AddEdge(ps[2], ps[1], 0, 0)
		}, 3.0 / 4},
		{"an edge added twice counts once", func() { s.AddEdge(ps[2], ps[1], 0, 0) }, 3.0 / 4},
		{"a child's parents cleared", func() { s.ClearParents(ps[1]) }, 2.0 / 4},
		{"a parent removed", func() { s.RemovePeer(ps[0]) }, 1.0 / 3},
		{"a child removed", func() { s.RemovePeer(ps[2]) }, 0},
	}
	for _, st := range steps {
		st.do()
		if got := task.MeanParents(); got != st.want {
			t.Fatalf("%s: MeanParents = %v, want %v", st.name, got, st.want)
		}
	}
}
