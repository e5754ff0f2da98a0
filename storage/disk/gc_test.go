package disk

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// evictLog records evict hook calls.
type evictLog struct {
	mu  sync.Mutex
	ids []protocol.TaskID
	ch  chan protocol.TaskID
}

func newEvictLog() *evictLog { return &evictLog{ch: make(chan protocol.TaskID, 100)} }

func (e *evictLog) hook(id protocol.TaskID) {
	e.mu.Lock()
	e.ids = append(e.ids, id)
	e.mu.Unlock()
	e.ch <- id
}

func (e *evictLog) take() []protocol.TaskID {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.ids
	e.ids = nil
	return out
}

func TestGCTTL(t *testing.T) {
	clock := newFakeClock()
	evicted := newEvictLog()
	s := openStore(t, t.TempDir(), WithClock(clock.now), WithTaskTTL(time.Hour),
		WithIncompleteTTL(10*time.Minute), WithEvictHook(evicted.hook))
	data := randomBytes(1, 2*protocol.MinPieceLength)

	complete := writeTask(t, s, "complete", data, 0, 1)
	if _, err := complete.Complete(context.Background(), protocol.Digest{}); err != nil {
		t.Fatal(err)
	}
	complete.Close()
	idle := writeTask(t, s, "idle-incomplete", data, 0)
	idle.Close()
	open := writeTask(t, s, "open-incomplete", data, 0)
	defer open.Close()
	clock.advance(30 * time.Minute)
	fresh := writeTask(t, s, "fresh-complete", data, 0, 1)
	if _, err := fresh.Complete(context.Background(), protocol.Digest{}); err != nil {
		t.Fatal(err)
	}
	fresh.Close()

	steps := []struct {
		name    string
		advance time.Duration
		want    []protocol.TaskID
	}{
		{"incomplete TTL passed", 0, []protocol.TaskID{testID("idle-incomplete")}},
		{"nothing more due", 20 * time.Minute, nil},
		{"task TTL passed for the old task", 11 * time.Minute, []protocol.TaskID{testID("complete")}},
		{"and for the fresh one", 30 * time.Minute, []protocol.TaskID{testID("fresh-complete")}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			clock.advance(st.advance)
			stats, err := s.GC(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(stats.Evicted, st.want) {
				t.Fatalf("evicted %v, want %v", short(stats.Evicted), short(st.want))
			}
			if got := evicted.take(); !slices.Equal(got, st.want) {
				t.Fatalf("evict hook saw %v, want %v", short(got), short(st.want))
			}
			if stats.FreedBytes != int64(len(st.want)*len(data)) {
				t.Fatalf("freed %d bytes", stats.FreedBytes)
			}
			for _, id := range st.want {
				if _, err := s.Stat(context.Background(), id); !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("evicted task still there: %v", err)
				}
			}
		})
	}
	if err := open.Err(); err != nil {
		t.Fatalf("open task was evicted: %v", err)
	}
}

func short(ids []protocol.TaskID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Short()
	}
	return out
}

func TestGCLRUOrder(t *testing.T) {
	clock := newFakeClock()
	const size = 256 << 10
	s := openStore(t, t.TempDir(), WithClock(clock.now), WithQuota(4*size))
	data := randomBytes(2, size)
	for _, name := range []string{"a", "b", "c", "d"} {
		writeTask(t, s, name, data).Close()
		clock.advance(time.Minute)
	}
	// Reading "a" makes "b" the least recently used.
	a, err := s.Open(context.Background(), testID("a"))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	clock.advance(time.Minute)
	writeTask(t, s, "e", data).Close()
	for name, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true, "e": true} {
		_, err := s.Stat(context.Background(), testID(name))
		if (err == nil) != want {
			t.Errorf("task %s present = %v, want %v", name, err == nil, want)
		}
	}
	// Periodic GC trims to the low watermark (90 % of the quota: 3 tasks).
	stats, err := s.GC(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.Evicted) != 1 || stats.Evicted[0] != testID("c") {
		t.Fatalf("GC evicted %v, want [c]", short(stats.Evicted))
	}
}

func TestAccessTimePersisted(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	s := openStore(t, dir, WithClock(clock.now))
	writeTask(t, s, "x", randomBytes(3, protocol.MinPieceLength)).Close()
	clock.advance(time.Hour)
	task, err := s.Open(context.Background(), testID("x"))
	if err != nil {
		t.Fatal(err)
	}
	task.Close()
	want := clock.now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, WithClock(clock.now))
	info, err := s.Stat(context.Background(), testID("x"))
	if err != nil || !info.AccessedAt.Equal(want) {
		t.Fatalf("AccessedAt after reopen = %v (%v), want %v", info.AccessedAt, err, want)
	}
}

func TestRunCollects(t *testing.T) {
	clock := newFakeClock()
	evicted := newEvictLog()
	s := openStore(t, t.TempDir(), WithClock(clock.now), WithIncompleteTTL(time.Minute),
		WithGCInterval(5*time.Millisecond), WithEvictHook(evicted.hook))
	writeTask(t, s, "stale", randomBytes(4, protocol.MinPieceLength)).Close()
	clock.advance(2 * time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	select {
	case id := <-evicted.ch:
		if id != testID("stale") {
			t.Fatalf("evicted %s", id.Short())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not collect the expired task")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}
