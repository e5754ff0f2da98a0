package source

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func TestStatusErrorsAndRetries(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		wantErr  error
		wantHits int64 // WithRetry(3, …): 4 attempts at most
	}{
		{"404", http.StatusNotFound, ErrNotFound, 1},
		{"410", http.StatusGone, ErrNotFound, 1},
		{"401", http.StatusUnauthorized, ErrUnauthorized, 1},
		{"403", http.StatusForbidden, ErrForbidden, 1},
		{"400", http.StatusBadRequest, ErrUnexpectedStatus, 1},
		{"408 is a 4xx: not retried", http.StatusRequestTimeout, ErrUnexpectedStatus, 1},
		{"429", http.StatusTooManyRequests, ErrUnavailable, 4},
		{"500", http.StatusInternalServerError, ErrUnavailable, 4},
		{"502", http.StatusBadGateway, ErrUnavailable, 4},
		{"503", http.StatusServiceUnavailable, ErrUnavailable, 4},
		{"504", http.StatusGatewayTimeout, ErrUnavailable, 4},
		{"501 is permanent", http.StatusNotImplemented, ErrUnavailable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, status(tt.code))
			_, _, err := newClient(t).Open(t.Context(), Request{URL: o.URL + "/f?X-Signature=s3cr3t"})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			var herr *HTTPError
			if !errors.As(err, &herr) || herr.StatusCode != tt.code {
				t.Fatalf("error %v does not carry status %d", err, tt.code)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(herr.URL, "s3cr3t") {
				t.Errorf("error leaks the signed query: %v", err)
			}
			if n := o.hits.Load(); n != tt.wantHits {
				t.Errorf("server got %d requests, want %d", n, tt.wantHits)
			}
		})
	}
}

func TestTransientFailureThenSuccess(t *testing.T) {
	var n atomic.Int64
	o := startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		serveContent(testData, "", testMod)(w, r)
	}))
	body, _, err := newClient(t).Open(t.Context(), Request{URL: o.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, body); err != nil {
		t.Fatal(err)
	}
	if got := o.hits.Load(); got != 3 {
		t.Errorf("server got %d requests, want 3", got)
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		cap        time.Duration
		minGap     time.Duration
	}{
		{"seconds honoured", "1", 5 * time.Second, time.Second},
		{"capped", "3600", 20 * time.Millisecond, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int64
			o := startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", tt.retryAfter)
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				w.WriteHeader(http.StatusOK)
			}))
			c := newClient(t, WithRetry(1, time.Millisecond, tt.cap))
			ctx := ctxTimeout(t, 30*time.Second) // an uncapped wait would hit this
			body, _, err := c.Open(ctx, Request{URL: o.URL})
			if err != nil {
				t.Fatal(err)
			}
			_ = body.Close()
			o.mu.Lock()
			defer o.mu.Unlock()
			if len(o.times) != 2 {
				t.Fatalf("server got %d requests, want 2", len(o.times))
			}
			if gap := o.times[1].Sub(o.times[0]); gap < tt.minGap {
				t.Errorf("retried after %v, want at least %v", gap, tt.minGap)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	// The jitter stub returns its upper bound minus one, exposing the ceiling.
	p := retryPolicy{base: 100 * time.Millisecond, cap: time.Second, jitter: func(d time.Duration) time.Duration { return d - 1 }}
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{"first retry", 0, 0, 100*time.Millisecond - 1},
		{"doubles", 1, 0, 200*time.Millisecond - 1},
		{"doubles again", 3, 0, 800*time.Millisecond - 1},
		{"capped", 4, 0, time.Second - 1},
		{"huge attempt does not overflow", 200, 0, time.Second - 1},
		{"Retry-After is a floor", 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{"Retry-After is capped", 0, time.Hour, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.delay(tt.attempt, tt.retryAfter); got != tt.want {
				t.Errorf("delay(%d, %v) = %v, want %v", tt.attempt, tt.retryAfter, got, tt.want)
			}
		})
	}
	real := retryPolicy{base: 100 * time.Millisecond, cap: time.Second, jitter: fullJitter}
	for range 1000 {
		if d := real.delay(2, 0); d < 0 || d >= 400*time.Millisecond {
			t.Fatalf("full jitter delay %v outside [0, 400ms)", d)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "120", 2 * time.Minute},
		{"spaces", " 3 ", 3 * time.Second},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"garbage", "soon", 0},
		{"digits then garbage", "5s", 0},
		{"huge", "99999999999999999999999", maxRetryAfterSeconds * time.Second},
		{"HTTP date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"past HTTP date", now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "1", "120", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "9999999999999", "1e9", " 7"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		d := parseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfterSeconds*time.Second {
			t.Errorf("parseRetryAfter(%q) = %v out of range", s, d)
		}
	})
}

// TestConnectionErrorsRetried: a server that accepts and hangs up at once.
func TestConnectionErrorsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepts atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })

	_, err = newClient(t).Stat(t.Context(), Request{URL: "http://" + ln.Addr().String() + "/"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Stat = %v, want ErrUnavailable", err)
	}
	if n := accepts.Load(); n != 4 {
		t.Errorf("server accepted %d connections, want 4 (1 + 3 retries)", n)
	}
}

func TestHangs(t *testing.T) {
	t.Run("stall before headers: ctx deadline ends it", func(t *testing.T) {
		release := releaseOnCleanup(t)
		o := startOrigin(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { blockUntil(r, release) }))
		_, _, err := newClient(t).Open(ctxTimeout(t, 100*time.Millisecond), Request{URL: o.URL})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Open = %v, want DeadlineExceeded", err)
		}
		if n := o.hits.Load(); n != 1 {
			t.Errorf("server got %d requests, want 1 (no retry once the caller gave up)", n)
		}
	})
	t.Run("stall before headers: header timeout is retried", func(t *testing.T) {
		release := releaseOnCleanup(t)
		o := startOrigin(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { blockUntil(r, release) }))
		c := newClient(t, WithTimeouts(0, 0, 20*time.Millisecond), WithRetry(2, time.Millisecond, time.Millisecond))
		_, _, err := c.Open(t.Context(), Request{URL: o.URL})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Open = %v, want ErrUnavailable", err)
		}
		if n := o.hits.Load(); n != 3 {
			t.Errorf("server got %d requests, want 3", n)
		}
	})
	t.Run("stall mid-body: ctx deadline ends the read", func(t *testing.T) {
		release := releaseOnCleanup(t)
		o := startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(testData)))
			_, _ = w.Write(testData[:100])
			flush(w)
			blockUntil(r, release)
		}))
		ctx := ctxTimeout(t, 200*time.Millisecond)
		body, _, err := newClient(t).Open(ctx, Request{URL: o.URL})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(t, body); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("read = %v, want DeadlineExceeded", err)
		}
	})
}

func TestContextCanceledBeforeRequest(t *testing.T) {
	o := startOrigin(t, serveContent(testData, "", testMod))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := newClient(t).Stat(ctx, Request{URL: o.URL}); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat = %v, want context.Canceled", err)
	}
	if n := o.accepts.Load(); n != 0 {
		t.Errorf("server accepted %d connections", n)
	}
}
