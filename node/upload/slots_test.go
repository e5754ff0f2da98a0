package upload

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dragonfly-p2p/df/protocol"
)

// TestSlotQueueStretches: with the uplink's capacity known, a waiter gets a
// slot beyond the size while the uploads under way send well below the
// capacity, and not while they fill it.
func TestSlotQueueStretches(t *testing.T) {
	const capacity = 1 << 20 // bytes per second
	tests := []struct {
		name     string
		capacity int64
		feed     int64 // bytes per second the granted upload sends
		want     bool
	}{
		{"slow child leaves the uplink idle", capacity, capacity / 10, true},
		{"uplink full", capacity, 2 * capacity, false},
		{"capacity unknown", 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newSlotQueue(1, tc.capacity)
			id := protocol.ContentTaskID(protocol.SHA256([]byte("task")))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if !q.acquire(ctx, pieceKey{id, 0}, 0) {
				t.Fatal("free slot refused")
			}
			go feed(ctx, q, tc.feed) // the granted upload
			if got := q.acquire(ctx, pieceKey{id, 1}, 2*time.Second); got != tc.want {
				t.Fatalf("second upload granted: %v, want %v", got, tc.want)
			}
		})
	}
}

// feed sends rate bytes per second through q's uplink meter until ctx ends.
func feed(ctx context.Context, q *slotQueue, rate int64) {
	w := q.writer(io.Discard)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, rate/100)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_, _ = w.Write(buf)
		}
	}
}

// TestSlotQueueStretchShrinks: slots beyond the size are at most
// (stretchMax-1) times the size, and the stretch goes away as uploads end
// while nobody waits.
func TestSlotQueueStretchShrinks(t *testing.T) {
	q := newSlotQueue(1, 1<<20)
	id := protocol.ContentTaskID(protocol.SHA256([]byte("task")))
	ctx := context.Background()
	if !q.acquire(ctx, pieceKey{id, 0}, 0) {
		t.Fatal("free slot refused")
	}
	for i := 1; i < stretchMax; i++ { // idle uplink: stretched
		if !q.acquire(ctx, pieceKey{id, uint32(i)}, 2*time.Second) {
			t.Fatalf("idle uplink did not stretch to %d slots", i+1)
		}
	}
	if q.acquire(ctx, pieceKey{id, stretchMax}, 2*stretchSettle) {
		t.Fatalf("stretched past %d times the size", stretchMax)
	}
	if got := q.stretchedTotal(); got != stretchMax-1 {
		t.Fatalf("stretched %d times, want %d", got, stretchMax-1)
	}
	for range stretchMax - 1 {
		q.release() // nobody waiting anyway
	}
	if got := q.inFlight(); got != 1 {
		t.Fatalf("in flight %d, want 1", got)
	}
	q.release()
	if !q.acquire(ctx, pieceKey{id, stretchMax + 1}, 0) {
		t.Fatal("free slot refused after the stretch shrank")
	}
}

func TestSlotQueueStretchLimit(t *testing.T) {
	tests := []struct {
		name string
		size int
		want int
	}{
		{"slow uplink", 2, 2 * stretchMax},
		{"one slot", 1, stretchMax},
		{"fast uplink: the copy buffers stay bounded", 64, maxStretched},
		{"more slots than the bound: never below the size", 2 * maxStretched, 2 * maxStretched},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := newSlotQueue(tc.size, 1<<20).stretchLimit(); got != tc.want {
				t.Fatalf("stretch limit %d, want %d", got, tc.want)
			}
		})
	}
}

// TestSlotQueueHandsOnAFreedSlot: a freed slot goes to a waiting request,
// above the size too when the queue stretches (the stretch holds while
// requests wait), so the uplink that needed that many uploads keeps them.
func TestSlotQueueHandsOnAFreedSlot(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		capacity  int64
		inFlight  int // before the release
		wantAfter int // in flight after the release
	}{
		{"stretched, requests waiting", 2, 1 << 20, 3, 3},
		{"fixed size, below it after the release", 2, 0, 2, 2},
		{"stretched to the limit", 2, 1 << 20, 2 * stretchMax, 2 * stretchMax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newSlotQueue(tc.size, tc.capacity)
			q.used = tc.inFlight
			id := protocol.ContentTaskID(protocol.SHA256([]byte("task")))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			q.mu.Lock()
			q.meter.restart(time.Now())
			q.mu.Unlock()
			go feed(ctx, q, 2*tc.capacity) // the uplink is full: no stretch
			for full := false; !full; time.Sleep(time.Millisecond) {
				q.mu.Lock()
				full = q.meter.rate(time.Now()) >= float64(tc.capacity)
				q.mu.Unlock()
			}
			granted := make(chan bool, 1)
			go func() { granted <- q.acquire(ctx, pieceKey{id, 7}, time.Minute) }()
			for q.waiting() == 0 {
				time.Sleep(time.Millisecond)
			}
			q.release()
			select {
			case ok := <-granted:
				if !ok {
					t.Fatal("waiting request refused")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("freed slot not handed to the waiting request")
			}
			if got := q.inFlight(); got != tc.wantAfter {
				t.Fatalf("in flight %d after the hand-on, want %d", got, tc.wantAfter)
			}
		})
	}
}

// TestMeterReadsANewUploadAtItsRate: an upload sending steadily since the
// uplink went busy reads at its rate from the first samples on, not at the
// fraction of it a cold average would show (which stretched the queue while
// the uplink was full).
func TestMeterReadsANewUploadAtItsRate(t *testing.T) {
	const rate = 1 << 20 // bytes per second
	tests := []struct {
		name    string
		elapsed time.Duration
	}{
		{"at the settle time", stretchSettle},
		{"after one window", meterWindow},
		{"long after", 10 * meterWindow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m meter
			start := time.Unix(1000, 0)
			m.add(50<<20, start.Add(-time.Minute)) // an earlier busy spell
			m.restart(start)
			const step = 10 * time.Millisecond
			for at := step; at <= tc.elapsed; at += step {
				m.add(rate/100, start.Add(at))
			}
			got := m.rate(start.Add(tc.elapsed))
			if got < 0.95*rate || got > 1.05*rate {
				t.Fatalf("rate %.0f B/s, want %d ± 5 %%", got, rate)
			}
		})
	}
}

// TestSlotGauges: the slots-in-use and waiting gauges follow the queue, a
// slot handed on to a waiter included.
func TestSlotGauges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := newSlotQueue(1, 0)
	m := newMetrics(q)
	value := func(g prometheus.Metric) float64 {
		var d dto.Metric
		if err := g.Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetGauge().GetValue()
	}
	check := func(step string, inUse, waiting float64) {
		t.Helper()
		if got := value(m.inUse); got != inUse {
			t.Errorf("%s: in use %v, want %v", step, got, inUse)
		}
		if got := value(m.waiting); got != waiting {
			t.Errorf("%s: waiting %v, want %v", step, got, waiting)
		}
	}
	check("idle", 0, 0)
	id := protocol.TaskID{1}
	if !q.acquire(ctx, pieceKey{id, 0}, 0) {
		t.Fatal("the free slot was refused")
	}
	granted := make(chan bool, 1)
	go func() { granted <- q.acquire(ctx, pieceKey{id, 1}, time.Minute) }()
	for q.waiting() == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the second request never waited")
		case <-time.After(time.Millisecond):
		}
	}
	check("one sending, one waiting", 1, 1)
	q.release()
	if !<-granted {
		t.Fatal("the waiter did not get the freed slot")
	}
	check("handed on", 1, 0)
	q.release()
	check("done", 0, 0)
}

// TestSlotQueueNotesOnlyWaits: the queued hook runs for a request that
// waits for a slot, and its end when the wait ends; a request that finds a
// free slot runs neither (super-seeding counts only waits, see superseed.go).
func TestSlotQueueNotesOnlyWaits(t *testing.T) {
	q := newSlotQueue(1, 0)
	id := protocol.ContentTaskID(protocol.SHA256([]byte("task")))
	ctx := context.Background()
	var queued, done atomic.Int32
	note := func() func() {
		queued.Add(1)
		return func() { done.Add(1) }
	}
	if !q.acquireNoting(ctx, pieceKey{id, 0}, time.Second, note) {
		t.Fatal("free slot refused")
	}
	if queued.Load() != 0 {
		t.Fatal("a request that found a free slot was noted as waiting")
	}
	granted := make(chan bool)
	go func() { granted <- q.acquireNoting(ctx, pieceKey{id, 1}, 5*time.Second, note) }()
	waitUntil(t, func() bool { return q.waiting() == 1 })
	if queued.Load() != 1 || done.Load() != 0 {
		t.Fatalf("while waiting: queued %d, ended %d; want 1, 0", queued.Load(), done.Load())
	}
	q.release()
	if !<-granted {
		t.Fatal("the waiting request got no slot")
	}
	if done.Load() != 1 {
		t.Fatalf("the wait's end noted %d times, want 1", done.Load())
	}
}
