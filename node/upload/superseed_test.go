package upload

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
)

func TestSlotQueueServesLeastSentFirst(t *testing.T) {
	q := newSlotQueue(1, 0)
	id := protocol.ContentTaskID(protocol.SHA256([]byte("task")))
	ctx := context.Background()
	if !q.acquire(ctx, pieceKey{id, 1}, 0) { // piece 1 sent once, slot held
		t.Fatal("free slot refused")
	}
	if q.acquire(ctx, pieceKey{id, 2}, 0) {
		t.Fatal("second slot granted without waiting")
	}
	order := make(chan uint32, 2)
	waitFor := func(n uint32) {
		go func() {
			if q.acquire(ctx, pieceKey{id, n}, 5*time.Second) {
				order <- n
				q.release()
			}
		}()
	}
	waitFor(1) // a duplicate, asked first
	waitUntil(t, func() bool { return q.waiting() == 1 })
	waitFor(3) // never sent, asked second
	waitUntil(t, func() bool { return q.waiting() == 2 })
	q.release()
	if first, second := <-order, <-order; first != 3 || second != 1 {
		t.Fatalf("served %d then %d, want the unsent piece 3 before the duplicate 1", first, second)
	}
	if got := q.inFlight(); got != 0 {
		t.Fatalf("in flight after release: %d", got)
	}
}

func TestSlotQueueWaitBound(t *testing.T) {
	q := newSlotQueue(1, 0)
	id := protocol.ContentTaskID(protocol.SHA256([]byte("task")))
	ctx := context.Background()
	q.acquire(ctx, pieceKey{id, 0}, 0)
	start := time.Now()
	if q.acquire(ctx, pieceKey{id, 1}, 50*time.Millisecond) {
		t.Fatal("granted a slot that was never freed")
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("gave up before the wait bound")
	}
	if q.waiting() != 0 {
		t.Fatal("a timed-out waiter stayed queued")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if q.acquire(cctx, pieceKey{id, 1}, time.Minute) {
		t.Fatal("granted after the context ended")
	}
}

func TestSuperSeedDesignation(t *testing.T) {
	id := protocol.ContentTaskID(protocol.SHA256([]byte("task")))
	a, b := peer.ID("a"), peer.ID("b")
	type step struct {
		name string
		do   func(s *superSeed, now *time.Time)
		// visible to a and b afterwards, for piece 0
		a, b bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a piece not from the origin is visible to all", []step{
			{"subscribe", func(s *superSeed, _ *time.Time) {}, true, true},
		}},
		{"an origin piece goes to one child first", []step{
			{"from origin", func(s *superSeed, _ *time.Time) { s.fromOrigin(id, 0) }, true, false},
			{"requested and sent", func(s *superSeed, now *time.Time) {
				s.requested(id, 0, "a")
				s.sending(id, 0)
				*now = now.Add(time.Second)
			}, true, false},
			{"after the spread wait", func(s *superSeed, now *time.Time) { *now = now.Add(spreadWait) }, true, true},
		}},
		{"a designee that does not ask loses it", []step{
			{"from origin", func(s *superSeed, _ *time.Time) { s.fromOrigin(id, 0) }, true, false},
			{"designee idle", func(s *superSeed, now *time.Time) { *now = now.Add(2 * designeeWait) }, true, true},
		}},
		{"a designee whose requests wait here keeps it", func() []step {
			var end func()
			return []step{
				{"from origin", func(s *superSeed, _ *time.Time) { s.fromOrigin(id, 0) }, true, false},
				{"busy here", func(s *superSeed, now *time.Time) {
					end = s.begin(id, a)
					*now = now.Add(2 * designeeWait)
				}, true, false},
				{"just idle", func(s *superSeed, now *time.Time) {
					end()
					*now = now.Add(designeeWait / 2)
				}, true, false},
				{"idle too long", func(s *superSeed, now *time.Time) { *now = now.Add(designeeWait) }, true, true},
			}
		}()},
		{"a designee busy here for too long loses it", []step{
			{"from origin", func(s *superSeed, _ *time.Time) { s.fromOrigin(id, 0) }, true, false},
			{"busy here", func(s *superSeed, now *time.Time) {
				s.begin(id, a)
				*now = now.Add(designeeMaxWait - time.Millisecond)
			}, true, false},
			{"past the bound", func(s *superSeed, now *time.Time) { *now = now.Add(time.Millisecond) }, true, true},
		}},
		{"another child's requests do not hold it", []step{
			{"from origin", func(s *superSeed, _ *time.Time) { s.fromOrigin(id, 0) }, true, false},
			{"b busy here", func(s *superSeed, now *time.Time) {
				s.begin(id, b)
				*now = now.Add(2 * designeeWait)
			}, true, true},
		}},
		{"the task completes", []step{
			{"from origin", func(s *superSeed, _ *time.Time) { s.fromOrigin(id, 0) }, true, false},
			{"forget", func(s *superSeed, _ *time.Time) { s.forget(id) }, true, true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			s := newSuperSeed()
			s.now = func() time.Time { return now }
			s.subscribe(id, a)
			s.subscribe(id, b)
			for _, st := range tc.steps {
				st.do(s, &now)
				// a asks first: with equal shares the first subscriber by ID gets it
				gotA, _, _ := s.visible(id, 0, a)
				gotB, _, _ := s.visible(id, 0, b)
				if gotA != st.a || gotB != st.b {
					t.Fatalf("%s: visible to a %v, b %v; want %v, %v", st.name, gotA, gotB, st.a, st.b)
				}
			}
		})
	}
}

func TestSuperSeedSharesPiecesOut(t *testing.T) {
	id := protocol.ContentTaskID(protocol.SHA256([]byte("task")))
	s := newSuperSeed()
	subs := []peer.ID{"a", "b", "c", "d"}
	for _, p := range subs {
		s.subscribe(id, p)
	}
	got := map[peer.ID]int{}
	for n := range uint32(40) {
		s.fromOrigin(id, n)
		for _, p := range subs {
			if ok, _, _ := s.visible(id, n, p); ok {
				got[p]++
				s.requested(id, n, p)
			}
		}
	}
	for _, p := range subs {
		if got[p] != 10 {
			t.Fatalf("shares %v, want 10 pieces each", got)
		}
	}
}

func TestSuperSeedChildLeaves(t *testing.T) {
	id := protocol.ContentTaskID(protocol.SHA256([]byte("task")))
	s := newSuperSeed()
	leave := s.subscribe(id, "a")
	s.subscribe(id, "b")
	s.fromOrigin(id, 0)
	if ok, _, _ := s.visible(id, 0, "a"); !ok {
		t.Fatal("designee a does not see its piece")
	}
	_, wake, _ := s.visible(id, 0, "b")
	leave()
	select {
	case <-wake:
	default:
		t.Fatal("b not woken when the designee left")
	}
	if ok, _, _ := s.visible(id, 0, "b"); !ok {
		t.Fatal("piece still held back after its designee left")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}
