package clikit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// ErrSignal is the cause (context.Cause) of a [SignalContext] ended by a
// signal; the error names the signal.
var ErrSignal = errors.New("received signal")

// SignalContext returns a context that is cancelled when the process gets
// SIGINT or SIGTERM, with a cause wrapping [ErrSignal]. After that first
// signal the default handling is restored, so a second Ctrl-C kills a
// process whose graceful shutdown hangs. stop releases the signals (and is
// safe to call more than once); defer it.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	return signalContext(parent, os.Interrupt, syscall.SIGTERM)
}

func signalContext(parent context.Context, sigs ...os.Signal) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(ch)
		select {
		case sig := <-ch:
			cancel(fmt.Errorf("%w: %v", ErrSignal, sig))
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		cancel(context.Canceled)
		<-done
	}
}
