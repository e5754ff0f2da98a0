package clikit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// untilDone runs until its context ends, then answers with what.
func untilDone(stopped *atomic.Int32, what error) Runner {
	return RunnerFunc(func(ctx context.Context) error {
		<-ctx.Done()
		stopped.Add(1)
		return what
	})
}

func TestRunAll(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		others  []error                         // what each blocking runner answers when stopped
		trigger func(ctx context.Context) error // a runner that returns at once
		cancel  bool                            // cancel the parent before running
		want    error
	}{
		{name: "parent cancelled", others: []error{nil, context.Canceled}, cancel: true},
		{name: "one fails, all stop", others: []error{nil, context.Canceled},
			trigger: func(context.Context) error { return fmt.Errorf("listen: %w", boom) }, want: boom},
		{name: "one finishes cleanly, all stop", others: []error{nil, nil},
			trigger: func(context.Context) error { return nil }},
		{name: "the failure wins over the others' reaction", others: []error{errors.New("closed"), context.Canceled},
			trigger: func(context.Context) error { return boom }, want: boom},
		{name: "a runner's own cancellation is not a stop", others: []error{nil},
			trigger: func(context.Context) error { return context.Canceled }, want: context.Canceled},
		{name: "no runners", cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stopped atomic.Int32
			var runners []Runner
			for _, e := range tt.others {
				runners = append(runners, untilDone(&stopped, e))
			}
			if tt.trigger != nil {
				runners = append(runners, RunnerFunc(tt.trigger))
			}
			if tt.cancel {
				cancel()
			}
			err := RunAll(ctx, runners...)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("RunAll = %v, want %v", err, tt.want)
			}
			if got := int(stopped.Load()); got != len(tt.others) {
				t.Fatalf("%d of %d runners stopped", got, len(tt.others))
			}
		})
	}
}
