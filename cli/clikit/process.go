package clikit

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"
)

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// Runner is anything with a Run(ctx) error lifecycle.
type Runner interface {
	Run(ctx context.Context) error
}

// RunAll runs every runner until ctx ends or one of them fails; the others
// are then cancelled and waited for. A runner returning nil before ctx
// ended does not stop the rest.
func RunAll(ctx context.Context, runners ...Runner) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, r := range runners {
		g.Go(func() error { return r.Run(gctx) })
	}
	return g.Wait()
}
