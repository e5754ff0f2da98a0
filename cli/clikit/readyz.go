package clikit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Check reports whether one part of the process is ready to serve: nil
// means ready. It should return promptly and honour ctx.
type Check func(ctx context.Context) error

// checks is the set of named readiness checks of an [OpsServer].
type checks struct {
	mu sync.Mutex
	m  map[string]Check
}

func newChecks() *checks { return &checks{m: make(map[string]Check)} }

func (c *checks) add(name string, check Check) {
	if name == "" || check == nil {
		panic("clikit: readiness check needs a name and a function")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.m[name]; dup {
		panic(fmt.Sprintf("clikit: readiness check %q added twice", name))
	}
	c.m[name] = check
}

// errCheckTimeout is the failure of a check that did not answer in time.
var errCheckTimeout = errors.New("timed out")

// report runs every check concurrently, each bounded by timeout, and
// renders /readyz: the status code and a text body, one "[+]name ok" or
// "[-]name failed: reason" line per check (only the failures unless
// verbose), then "ok" or "not ready".
func (c *checks) report(ctx context.Context, timeout time.Duration, verbose bool) (int, string) {
	c.mu.Lock()
	m := maps.Clone(c.m)
	c.mu.Unlock()
	names := slices.Sorted(maps.Keys(m))

	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { errs[i] = runCheck(ctx, timeout, m[name]) })
	}
	wg.Wait()

	var b strings.Builder
	ready := true
	for i, name := range names {
		if errs[i] == nil {
			if verbose {
				fmt.Fprintf(&b, "[+]%s ok\n", name)
			}
			continue
		}
		ready = false
		fmt.Fprintf(&b, "[-]%s failed: %s\n", name, strings.ReplaceAll(errs[i].Error(), "\n", "; "))
	}
	if !ready {
		b.WriteString("not ready\n")
		return http.StatusServiceUnavailable, b.String()
	}
	b.WriteString("ok\n")
	return http.StatusOK, b.String()
}

// runCheck runs one check with a deadline. A check that ignores its
// context is abandoned (its goroutine finishes on its own) and reported
// as timed out; a check that panics is reported as failed.
func runCheck(ctx context.Context, timeout time.Duration, check Check) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v", r)
			}
		}()
		done <- check(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errCheckTimeout
	}
}
