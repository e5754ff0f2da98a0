// Package ratelimit enforces byte-rate limits on transfers: host-wide upload
// and download limits and per-task limits, all changeable at runtime.
//
// A Limiter is a token bucket over bytes (golang.org/x/time/rate underneath).
// A nil *Limiter, or one whose limit is 0, is unlimited and costs one atomic
// load per call. NewReader and NewWriter apply any number of limiters to a
// stream at once, so a piece transfer can honour the host limit and its
// task's limit together.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// MinBurst is the floor of the bucket size: a limit of at least MinBurst
// bytes per second gets a bucket of at least MinBurst bytes (see Burst).
const MinBurst = 256 << 10

// Burst returns the bucket size used for a limit of bytesPerSecond: a tenth
// of a second's worth of bytes, but at least MinBurst, and never more than
// one second's worth when the limit is below MinBurst. A larger burst keeps
// the number of waits per second small at high rates; the ceiling of one
// second keeps very low limits from granting a long initial spike.
// It returns 0 for an unlimited rate (bytesPerSecond ≤ 0).
func Burst(bytesPerSecond int64) int {
	if bytesPerSecond <= 0 {
		return 0
	}
	b := max(bytesPerSecond/10, min(bytesPerSecond, MinBurst))
	return int(min(b, math.MaxInt))
}

// Limiter limits a byte rate. It is safe for concurrent use; every method
// accepts a nil receiver, which is unlimited.
type Limiter struct {
	bps   atomic.Int64 // current limit, 0 = unlimited
	mu    sync.Mutex   // serialises SetLimit
	lim   *rate.Limiter
	clock clock
}

// New returns a Limiter allowing bytesPerSecond bytes per second with the
// burst given by Burst, starting with a full bucket. bytesPerSecond ≤ 0
// means unlimited.
func New(bytesPerSecond int64) *Limiter {
	return newWithClock(bytesPerSecond, realClock{})
}

func newWithClock(bytesPerSecond int64, c clock) *Limiter {
	l := &Limiter{clock: c}
	bps := max(bytesPerSecond, 0)
	if bps > 0 {
		// Start with a full bucket: a new transfer may burst at once.
		l.lim = rate.NewLimiter(rate.Limit(bps), Burst(bps))
	} else {
		// Placeholder, never consulted while unlimited. rate.Inf is avoided
		// on purpose: switching a rate.Limiter between Inf and a finite
		// limit can leave its token count undefined (NaN).
		l.lim = rate.NewLimiter(1, 0)
	}
	l.bps.Store(bps)
	return l
}

// SetLimit changes the limit; bytesPerSecond ≤ 0 makes the Limiter
// unlimited. Waits already granted keep their schedule; later ones follow
// the new limit. Tokens accumulated so far are kept (up to the new burst);
// a Limiter that was unlimited starts limited with an empty bucket.
func (l *Limiter) SetLimit(bytesPerSecond int64) {
	if l == nil {
		return
	}
	bps := max(bytesPerSecond, 0)
	l.mu.Lock()
	defer l.mu.Unlock()
	if bps == l.bps.Load() {
		return
	}
	if bps > 0 {
		now := l.clock.Now()
		l.lim.SetLimitAt(now, rate.Limit(bps))
		l.lim.SetBurstAt(now, Burst(bps))
	}
	l.bps.Store(bps)
}

// Limit returns the current limit in bytes per second, 0 when unlimited.
func (l *Limiter) Limit() int64 {
	if l == nil {
		return 0
	}
	return l.bps.Load()
}

// burst returns the current bucket size, 0 when unlimited.
func (l *Limiter) burst() int {
	if l.Limit() == 0 {
		return 0
	}
	return l.lim.Burst()
}

// WaitN blocks until n bytes may pass, or ctx ends. n may exceed the burst:
// the wait is then split into burst-sized steps, each following the limit in
// force when it starts. It returns at once when the limit is 0 or n ≤ 0.
// When ctx has a deadline that a step would overrun, WaitN returns an error
// wrapping context.DeadlineExceeded without waiting for that step.
func (l *Limiter) WaitN(ctx context.Context, n int) error {
	for n > 0 {
		if l.Limit() == 0 {
			return nil
		}
		chunk := min(n, l.lim.Burst())
		granted, err := l.wait(ctx, chunk)
		if err != nil {
			return err
		}
		if granted {
			n -= chunk
		}
	}
	return nil
}

// wait waits for n ≤ burst tokens. A concurrent SetLimit may shrink the
// burst below n; the reservation is then refused, nothing is waited and
// granted is false, so that WaitN asks again with the new burst.
func (l *Limiter) wait(ctx context.Context, n int) (granted bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := l.clock.Now()
	r := l.lim.ReserveN(now, n)
	if !r.OK() {
		return false, nil
	}
	d := r.DelayFrom(now)
	if d == 0 {
		return true, nil
	}
	if deadline, ok := ctx.Deadline(); ok && now.Add(d).After(deadline) {
		r.CancelAt(now)
		return false, fmt.Errorf("ratelimit: waiting %v for %d bytes would exceed the deadline: %w", d, n, context.DeadlineExceeded)
	}
	if err := l.clock.Sleep(ctx, d); err != nil {
		r.CancelAt(l.clock.Now())
		return false, err
	}
	return true, nil
}

// clock abstracts time for tests.
type clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx ends, returning ctx's error then.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
