package ratelimit

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

func TestBurst(t *testing.T) {
	tests := []struct {
		name string
		bps  int64
		want int
	}{
		{"unlimited", 0, 0},
		{"negative is unlimited", -5, 0},
		{"one byte per second", 1, 1},
		{"below the floor: one second's worth", 100 * kib, 100 * kib},
		{"at the floor", MinBurst, MinBurst},
		{"floor wins over a tenth", 1 * mib, MinBurst},
		{"a tenth of the limit", 10 * mib, mib},
		{"huge limit", math.MaxInt64, math.MaxInt64 / 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Burst(tt.bps); got != tt.want {
				t.Errorf("Burst(%d) = %d, want %d", tt.bps, got, tt.want)
			}
		})
	}
}

func TestWaitNArithmetic(t *testing.T) {
	tests := []struct {
		name      string
		limit     int64
		n         []int // successive WaitN calls at the same instant
		wantSleep time.Duration
	}{
		{"unlimited", 0, []int{100 * mib}, 0},
		{"zero bytes", mib, []int{0}, 0},
		{"negative bytes", mib, []int{-1}, 0},
		{"within the initial burst", mib, []int{MinBurst}, 0},
		{"one burst beyond", mib, []int{2 * MinBurst}, 250 * time.Millisecond},
		{"larger than burst is split", mib, []int{mib + MinBurst}, time.Second},
		{"successive calls share the bucket", mib, []int{MinBurst, MinBurst, MinBurst}, 500 * time.Millisecond},
		{"slow limit", 1 * kib, []int{3 * kib}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			l := newWithClock(tt.limit, clk)
			for _, n := range tt.n {
				if err := l.WaitN(t.Context(), n); err != nil {
					t.Fatalf("WaitN(%d): %v", n, err)
				}
			}
			if got := clk.total(); got != tt.wantSleep {
				t.Errorf("slept %v, want %v", got, tt.wantSleep)
			}
		})
	}
}

func TestWaitNRefillsOverTime(t *testing.T) {
	clk := newFakeClock()
	l := newWithClock(mib, clk)
	if err := l.WaitN(t.Context(), MinBurst); err != nil { // drains the bucket
		t.Fatal(err)
	}
	clk.advance(125 * time.Millisecond) // refills half a burst
	if err := l.WaitN(t.Context(), MinBurst); err != nil {
		t.Fatal(err)
	}
	if got, want := clk.total(), 125*time.Millisecond; got != want {
		t.Errorf("slept %v, want %v", got, want)
	}
}

func TestWaitNDeadline(t *testing.T) {
	clk := newFakeClock()
	l := newWithClock(mib, clk)
	if err := l.WaitN(t.Context(), MinBurst); err != nil { // drain
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(t.Context(), clk.Now().Add(100*time.Millisecond))
	defer cancel()
	err := l.WaitN(ctx, MinBurst) // needs 250ms
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitN past the deadline = %v, want DeadlineExceeded", err)
	}
	if clk.total() != 0 {
		t.Errorf("slept %v before failing", clk.total())
	}
	// The refused wait gave its tokens back: the next one costs 250ms, not 500ms.
	if err := l.WaitN(t.Context(), MinBurst); err != nil {
		t.Fatal(err)
	}
	if got, want := clk.total(), 250*time.Millisecond; got != want {
		t.Errorf("slept %v after a cancelled reservation, want %v", got, want)
	}
}

func TestWaitNCanceled(t *testing.T) {
	tests := []struct {
		name  string
		limit int64
		n     int
	}{
		{"needs no wait", mib, 1},
		{"needs a wait", mib, 2 * MinBurst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			l := newWithClock(tt.limit, clk)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := l.WaitN(ctx, tt.n); !errors.Is(err, context.Canceled) {
				t.Errorf("WaitN = %v, want context.Canceled", err)
			}
		})
	}
}

func TestSetLimit(t *testing.T) {
	clk := newFakeClock()
	l := newWithClock(0, clk)
	if err := l.WaitN(t.Context(), 100*mib); err != nil || clk.total() != 0 {
		t.Fatalf("unlimited WaitN: err %v, slept %v", err, clk.total())
	}

	l.SetLimit(mib)
	if got := l.Limit(); got != mib {
		t.Fatalf("Limit() = %d, want %d", got, mib)
	}
	// Switched from unlimited: the bucket starts empty.
	if err := l.WaitN(t.Context(), MinBurst); err != nil {
		t.Fatal(err)
	}
	if got, want := clk.total(), 250*time.Millisecond; got != want {
		t.Errorf("first limited wait slept %v, want %v", got, want)
	}

	l.SetLimit(10 * mib) // burst 1 MiB
	if got := l.burst(); got != mib {
		t.Errorf("burst at 10 MiB/s = %d, want %d", got, mib)
	}
	before := clk.total()
	if err := l.WaitN(t.Context(), mib); err != nil { // empty bucket: 1 MiB at 10 MiB/s
		t.Fatal(err)
	}
	if got, want := clk.total()-before, 100*time.Millisecond; got != want {
		t.Errorf("wait at 10 MiB/s slept %v, want %v", got, want)
	}

	l.SetLimit(-1)
	if l.Limit() != 0 {
		t.Errorf("Limit() after SetLimit(-1) = %d, want 0", l.Limit())
	}
	before = clk.total()
	if err := l.WaitN(t.Context(), 100*mib); err != nil || clk.total() != before {
		t.Errorf("WaitN after unlimiting: err %v, slept %v", err, clk.total()-before)
	}
}

func TestSetLimitShrinksBurst(t *testing.T) {
	clk := newFakeClock()
	l := newWithClock(10*mib, clk) // full bucket of 1 MiB
	l.SetLimit(mib)                // burst 256 KiB: the surplus is dropped
	if err := l.WaitN(t.Context(), mib); err != nil {
		t.Fatal(err)
	}
	if got, want := clk.total(), 750*time.Millisecond; got != want {
		t.Errorf("slept %v, want %v", got, want)
	}
	if clk.naps != 3 {
		t.Errorf("WaitN(1 MiB) took %d waits, want 3 burst-sized ones", clk.naps)
	}
}

func TestNilLimiter(t *testing.T) {
	var l *Limiter
	l.SetLimit(mib)
	if l.Limit() != 0 {
		t.Errorf("nil Limit() = %d", l.Limit())
	}
	if err := l.WaitN(t.Context(), mib); err != nil {
		t.Errorf("nil WaitN = %v", err)
	}
}

// TestConcurrentSetLimit runs waits while the limit flips, for the race
// detector and to show that no wait is lost or stuck.
func TestConcurrentSetLimit(t *testing.T) {
	l := New(1 << 30)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if err := l.WaitN(ctx, 4*mib); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	limits := []int64{0, 1 << 30, 2 << 30, 0, 4 << 30}
	for i := 0; i < 200; i++ {
		l.SetLimit(limits[i%len(limits)])
	}
	l.SetLimit(0)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
