package upload

import (
	"context"
	"io"
	"testing"
	"time"

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
			go func() { // the granted upload, sending at tc.feed
				w := q.writer(io.Discard)
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				buf := make([]byte, tc.feed/100)
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
						_, _ = w.Write(buf)
					}
				}
			}()
			if got := q.acquire(ctx, pieceKey{id, 1}, 2*time.Second); got != tc.want {
				t.Fatalf("second upload granted: %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSlotQueueStretchShrinks: slots beyond the size are at most
// (stretchMax-1) times the size, and a freed slot is handed on only below
// the size.
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
