package clikit

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSignalContext(t *testing.T) {
	tests := []struct {
		name string
		sig  syscall.Signal
		want string
	}{
		{name: "SIGTERM", sig: syscall.SIGTERM, want: "terminated"},
		{name: "SIGINT", sig: syscall.SIGINT, want: "interrupt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, stop := SignalContext(t.Context())
			defer stop()
			if err := syscall.Kill(syscall.Getpid(), tt.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("context not cancelled by the signal")
			}
			cause := context.Cause(ctx)
			if !errors.Is(cause, ErrSignal) || !strings.Contains(cause.Error(), tt.want) {
				t.Fatalf("cause = %v, want ErrSignal naming %q", cause, tt.want)
			}
		})
	}
}

func TestSignalContextStop(t *testing.T) {
	parent, cancelParent := context.WithCancel(t.Context())
	ctx, stop := SignalContext(parent)
	cancelParent()
	<-ctx.Done()
	if !errors.Is(context.Cause(ctx), context.Canceled) {
		t.Fatalf("cause after parent cancel = %v", context.Cause(ctx))
	}
	stop()
	stop() // twice is fine

	ctx, stop = SignalContext(t.Context())
	stop()
	if ctx.Err() == nil {
		t.Fatal("stop did not cancel the context")
	}
}
