package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// retryPolicy is the backoff schedule of WithRetry.
type retryPolicy struct {
	max       int
	base, cap time.Duration
	// jitter returns a random duration in [0, d); d > 0.
	jitter func(d time.Duration) time.Duration
}

// delay returns the wait before retry number attempt (0 for the first
// retry): full jitter over base·2^attempt, at least retryAfter, at most cap.
func (p retryPolicy) delay(attempt int, retryAfter time.Duration) time.Duration {
	ceil := p.cap
	if attempt < 62 && p.base <= p.cap>>attempt {
		ceil = p.base << attempt
	}
	d := time.Duration(0)
	if ceil > 0 {
		d = p.jitter(ceil)
	}
	d = max(d, retryAfter)
	return min(d, p.cap)
}

func fullJitter(d time.Duration) time.Duration { return rand.N(d) }

// maxRetryAfterSeconds bounds the parsed value before it is capped anyway.
const maxRetryAfterSeconds = 1 << 30

// parseRetryAfter interprets a Retry-After header: delay-seconds or an
// HTTP-date relative to now. Absent, malformed or past values give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		if len(v) > 10 {
			return maxRetryAfterSeconds * time.Second
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0
		}
		return time.Duration(min(n, maxRetryAfterSeconds)) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	return min(max(d, 0), maxRetryAfterSeconds*time.Second)
}

// retryableStatus: the origin may answer differently soon. 501 (a method
// the server does not implement) and 505 are permanent.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests ||
		(code >= 500 && code != http.StatusNotImplemented && code != http.StatusHTTPVersionNotSupported)
}

// retryableTransportError: connection-level failures and timeouts are worth
// another try, except policy refusals and TLS failures, which would only
// repeat. The caller has ruled out its own context ending.
func retryableTransportError(err error) bool {
	var (
		verr  *tls.CertificateVerificationError
		uaerr x509.UnknownAuthorityError
		herr  x509.HostnameError
		cierr x509.CertificateInvalidError
		rherr tls.RecordHeaderError
		alert tls.AlertError
	)
	switch {
	case errors.Is(err, ErrBlockedAddress), errors.Is(err, ErrRedirectRefused),
		errors.Is(err, ErrTooManyRedirects), errors.Is(err, ErrInvalidRequest):
		return false
	case errors.As(err, &verr), errors.As(err, &uaerr), errors.As(err, &herr),
		errors.As(err, &cierr), errors.As(err, &rherr), errors.As(err, &alert):
		return false
	}
	return true
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
