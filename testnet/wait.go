package testnet

import (
	"context"
	"fmt"
	"time"
)

// WaitFor polls cond every interval until it holds or ctx ends.
func WaitFor(ctx context.Context, interval time.Duration, cond func() bool) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for !cond() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("condition not met: %w", ctx.Err())
		}
	}
	return nil
}
