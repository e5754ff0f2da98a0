package clikit

import (
	"context"
	"errors"
	"sync"
)

// Runner is a component with a Run(ctx) error lifecycle: it works until
// ctx ends, then cleans up and returns (nil, or ctx's error, after a
// clean stop). [OpsServer] and the daemons' nodes are Runners.
type Runner interface {
	Run(ctx context.Context) error
}

// RunnerFunc adapts a function to [Runner].
type RunnerFunc func(ctx context.Context) error

// Run calls f(ctx).
func (f RunnerFunc) Run(ctx context.Context) error { return f(ctx) }

// RunAll runs every runner concurrently until ctx ends or one of them
// returns, then cancels the others and waits for all of them: a daemon's
// parts live and die together (an ops listener that outlives the node it
// reports on would answer /livez for a corpse).
//
// It returns the first error a runner returned on its own, or nil when the
// group stopped because ctx ended or a runner finished cleanly. Runners
// answering the cancellation with context.Canceled (or the deadline of
// ctx) do not count as failing.
func RunAll(ctx context.Context, runners ...Runner) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, r := range runners {
		wg.Go(func() {
			err := r.Run(ctx)
			mu.Lock()
			if first == nil && err != nil && !stoppedBy(ctx, err) {
				first = err
			}
			mu.Unlock()
			cancel() // after recording err, so that it wins over the others' reactions
		})
	}
	wg.Wait()
	return first
}

// stoppedBy reports whether err is a runner's answer to ctx ending.
func stoppedBy(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}
