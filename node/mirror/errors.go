package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/node/source"
	"github.com/dragonfly-p2p/df/storage"
)

// Errors. The handler answers each with an OCI error body and the status in
// brackets; test with errors.Is.
var (
	// ErrNotRoute: the path is not an endpoint the mirror serves (tags/list,
	// referrers, uploads, …) [404 UNSUPPORTED].
	ErrNotRoute = errors.New("not a mirrored endpoint")
	// ErrMethod: a method other than GET or HEAD [405 UNSUPPORTED].
	ErrMethod = errors.New("the mirror is read-only: GET and HEAD only")
	// ErrNameInvalid: a malformed repository name, path or ns [400 NAME_INVALID].
	ErrNameInvalid = errors.New("invalid repository name")
	// ErrDigestInvalid: a malformed or non-sha256 digest [400 DIGEST_INVALID].
	ErrDigestInvalid = errors.New("invalid digest")
	// ErrRegistryNotMirrored: the registry is not configured; nothing was
	// sent anywhere [404 NAME_UNKNOWN].
	ErrRegistryNotMirrored = errors.New("registry not mirrored here")
	// ErrNotFound: the registry (or the cluster) has no such manifest or
	// blob in that repository [404 MANIFEST_UNKNOWN / BLOB_UNKNOWN].
	ErrNotFound = errors.New("not found")
	// ErrManifestUnknown: a reference that can name no manifest [404 MANIFEST_UNKNOWN].
	ErrManifestUnknown = errors.New("manifest unknown")
	// ErrUnauthorized: the registry wants (other) credentials [401 UNAUTHORIZED].
	ErrUnauthorized = errors.New("authentication required")
	// ErrDenied: the registry refused these credentials access [403 DENIED].
	ErrDenied = errors.New("access denied")
	// ErrTooManyRequests: the registry is rate limiting, or the mirror has
	// too many requests in flight [429 TOOMANYREQUESTS].
	ErrTooManyRequests = errors.New("too many requests")
	// ErrManifestTooLarge: a manifest above Config.MaxManifestSize [413 SIZE_INVALID].
	ErrManifestTooLarge = errors.New("manifest too large")
	// ErrBlobTooLarge: a blob above Config.MaxBlobSize [413 SIZE_INVALID].
	ErrBlobTooLarge = errors.New("blob too large")
	// ErrManifestInvalid: the registry's manifest breaks a rule (both an
	// index and a manifest, mediaType ≠ Content-Type, too many entries,
	// duplicate keys, unknown media type) [502 MANIFEST_INVALID].
	ErrManifestInvalid = errors.New("manifest rejected")
	// ErrDigestMismatch: the registry's bytes do not match the digest [502 DIGEST_INVALID].
	ErrDigestMismatch = errors.New("content does not match its digest")
	// ErrUpstream: the registry failed or broke the protocol [502 UNKNOWN].
	ErrUpstream = errors.New("upstream registry error")
	// ErrUpstreamTimeout: the registry or the download took too long [504 UNKNOWN].
	ErrUpstreamTimeout = errors.New("upstream registry timeout")
	// ErrRealmRefused: a Bearer challenge named a token endpoint that is not
	// the registry host nor one of its auth hosts [502 UNAUTHORIZED].
	ErrRealmRefused = errors.New("token endpoint not allowed for this registry")
)

// upstreamError is an error status from a registry or token endpoint.
type upstreamError struct {
	kind       error  // one of the sentinels above
	status     int    // the registry's status (0: none)
	challenge  string // re-serialised WWW-Authenticate, for 401
	retryAfter string // validated Retry-After seconds, for 429
	msg        string
}

func (e *upstreamError) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("%v: %s (registry answered %d)", e.kind, e.msg, e.status)
	}
	return fmt.Sprintf("%v: %s", e.kind, e.msg)
}

func (e *upstreamError) Unwrap() error { return e.kind }

// ociError is one error response.
type ociError struct {
	status  int
	code    string
	message string
	header  http.Header
}

type ociErrorBody struct {
	Errors []ociErrorEntry `json:"errors"`
}

type ociErrorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// toOCI maps an error to its response.
func toOCI(err error, ep endpoint) ociError {
	e := ociError{status: http.StatusBadGateway, code: "UNKNOWN", message: clipMsg(err.Error()), header: http.Header{}}
	var ue *upstreamError
	if errors.As(err, &ue) {
		if ue.challenge != "" {
			e.header.Set("WWW-Authenticate", ue.challenge)
		}
		if ue.retryAfter != "" {
			e.header.Set("Retry-After", ue.retryAfter)
		}
	}
	unknown := "MANIFEST_UNKNOWN"
	if ep == endpointBlob {
		unknown = "BLOB_UNKNOWN"
	}
	switch {
	case errors.Is(err, ErrNotRoute):
		e.status, e.code = http.StatusNotFound, "UNSUPPORTED"
	case errors.Is(err, ErrMethod):
		e.status, e.code = http.StatusMethodNotAllowed, "UNSUPPORTED"
		e.header.Set("Allow", "GET, HEAD")
	case errors.Is(err, ErrNameInvalid):
		e.status, e.code = http.StatusBadRequest, "NAME_INVALID"
	case errors.Is(err, ErrDigestInvalid):
		e.status, e.code = http.StatusBadRequest, "DIGEST_INVALID"
	case errors.Is(err, ErrRegistryNotMirrored):
		e.status, e.code = http.StatusNotFound, "NAME_UNKNOWN"
	case errors.Is(err, ErrManifestUnknown):
		e.status, e.code = http.StatusNotFound, "MANIFEST_UNKNOWN"
	case errors.Is(err, ErrNotFound):
		e.status, e.code = http.StatusNotFound, unknown
	case errors.Is(err, ErrRealmRefused):
		e.status, e.code = http.StatusBadGateway, "UNAUTHORIZED"
	case errors.Is(err, ErrUnauthorized):
		e.status, e.code = http.StatusUnauthorized, "UNAUTHORIZED"
	case errors.Is(err, ErrDenied):
		e.status, e.code = http.StatusForbidden, "DENIED"
	case errors.Is(err, ErrTooManyRequests):
		e.status, e.code = http.StatusTooManyRequests, "TOOMANYREQUESTS"
		if e.header.Get("Retry-After") == "" {
			e.header.Set("Retry-After", "1")
		}
	case errors.Is(err, ErrManifestTooLarge), errors.Is(err, ErrBlobTooLarge):
		e.status, e.code = http.StatusRequestEntityTooLarge, "SIZE_INVALID"
	case errors.Is(err, ErrManifestInvalid):
		e.status, e.code = http.StatusBadGateway, "MANIFEST_INVALID"
	case errors.Is(err, ErrDigestMismatch):
		e.status, e.code = http.StatusBadGateway, "DIGEST_INVALID"
	case errors.Is(err, ErrUpstreamTimeout):
		e.status = http.StatusGatewayTimeout
	}
	return e
}

// write sends the error (no body for HEAD).
func (e ociError) write(w http.ResponseWriter, head bool) {
	h := w.Header()
	for k, vs := range e.header {
		h[k] = vs
	}
	body, _ := json.Marshal(ociErrorBody{Errors: []ociErrorEntry{{Code: e.code, Message: e.message}}})
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	if !head {
		_, _ = w.Write(body)
	}
}

func clipMsg(s string) string {
	const max = 300
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// classifyDownload maps a download conductor error to a mirror sentinel.
func classifyDownload(err error) error {
	var he *source.HTTPError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrUpstreamTimeout, err)
	case errors.Is(err, source.ErrNotFound), errors.Is(err, download.ErrNoSource):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, source.ErrUnauthorized):
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	case errors.Is(err, source.ErrForbidden):
		return fmt.Errorf("%w: %w", ErrDenied, err)
	case errors.As(err, &he) && he.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("%w: %w", ErrTooManyRequests, err)
	case errors.Is(err, storage.ErrDigestMismatch):
		return fmt.Errorf("%w: %w", ErrDigestMismatch, err)
	}
	return fmt.Errorf("%w: %w", ErrUpstream, err)
}
