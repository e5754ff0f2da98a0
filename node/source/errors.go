package source

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/dragonfly-p2p/df/protocol/netguard"
)

// Errors returned by the Client; test with errors.Is. Errors caused by a
// response status are *HTTPError values that unwrap to one of these.
var (
	// ErrNotFound: the origin answered 404 or 410.
	ErrNotFound = errors.New("source: not found")
	// ErrUnauthorized: the origin answered 401 (credentials missing or bad).
	ErrUnauthorized = errors.New("source: unauthorized")
	// ErrForbidden: the origin answered 403.
	ErrForbidden = errors.New("source: forbidden")
	// ErrRangeNotSupported: the origin answered a range request with the
	// whole representation; the caller has to read the body from the start.
	ErrRangeNotSupported = errors.New("source: origin does not serve byte ranges")
	// ErrChanged: the origin's content is no longer the one the caller's
	// validator (ETag or Last-Modified) names, or no longer covers the range.
	ErrChanged = errors.New("source: origin content changed")
	// ErrBlockedAddress: the destination resolved to an address that the
	// client refuses to connect to (see WithAllowedNetworks).
	ErrBlockedAddress = netguard.ErrBlocked
	// ErrTooManyRedirects: more than 5 redirects, or a redirect loop.
	ErrTooManyRedirects = errors.New("source: too many redirects")
	// ErrRedirectRefused: a redirect to a host that is not allowed, to
	// another scheme than http(s), or from https to http.
	ErrRedirectRefused = errors.New("source: redirect refused")
	// ErrUnavailable: the origin kept failing (5xx, 429, connection errors,
	// timeouts) after all retries.
	ErrUnavailable = errors.New("source: origin unavailable")
	// ErrInvalidResponse: the origin broke the protocol: a wrong or missing
	// Content-Range, a length that contradicts it, or a body longer than
	// announced.
	ErrInvalidResponse = errors.New("source: invalid response from origin")
	// ErrUnexpectedStatus: any other status the request cannot succeed with.
	ErrUnexpectedStatus = errors.New("source: unexpected status")
	// ErrInvalidRequest: the URL or the range asked for is unusable.
	ErrInvalidRequest = errors.New("source: invalid request")
)

// HTTPError reports a response status that ended a request. It unwraps to
// the sentinel matching the status (ErrNotFound, ErrUnavailable, …).
type HTTPError struct {
	Method     string
	URL        string // redacted with RedactURL
	StatusCode int
	kind       error
}

// Error implements error.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
}

// Unwrap returns the sentinel error for the status.
func (e *HTTPError) Unwrap() error { return e.kind }

// statusKind maps a status to its sentinel error.
func statusKind(code int) error {
	switch {
	case code == http.StatusNotFound || code == http.StatusGone:
		return ErrNotFound
	case code == http.StatusUnauthorized:
		return ErrUnauthorized
	case code == http.StatusForbidden:
		return ErrForbidden
	case code == http.StatusTooManyRequests || code >= 500:
		return ErrUnavailable
	default:
		return ErrUnexpectedStatus
	}
}

func newHTTPError(method, redactedURL string, code int) *HTTPError {
	return &HTTPError{Method: method, URL: redactedURL, StatusCode: code, kind: statusKind(code)}
}
