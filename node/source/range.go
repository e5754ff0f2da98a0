package source

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/dragonfly-p2p/df/protocol/httprange"
)

// OpenRange fetches exactly the bytes [off, off+n) of the representation.
// The body delivers n bytes, reports io.ErrUnexpectedEOF when the origin
// sends fewer and ErrInvalidResponse when it sends more; reads are bounded
// by ctx. The caller closes it.
//
// ifRange, when not empty, is the ETag or Last-Modified value of the
// representation the caller has been reading; if the origin's content no
// longer carries it, OpenRange returns ErrChanged instead of mixing bytes
// of two versions. A weak ETag (W/"…"), which If-Range cannot carry, is
// compared with the response's ETag instead.
//
// Errors: ErrRangeNotSupported when the origin answers with the whole
// representation and off > 0 (at off 0 the first n bytes of a body of known
// sufficient length are used); ErrInvalidResponse for a Content-Range other
// than the requested range; ErrChanged for 416 or a changed validator;
// ErrInvalidRequest for off < 0, n ≤ 0 or an overflowing range.
func (c *Client) OpenRange(ctx context.Context, r Request, off, n int64, ifRange string) (io.ReadCloser, error) {
	if off < 0 || n <= 0 || off > math.MaxInt64-n {
		return nil, fmt.Errorf("%w: range offset %d length %d", ErrInvalidRequest, off, n)
	}
	h := http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", off, off+n-1)}}
	if ifRange != "" && !isWeakETag(ifRange) {
		h.Set("If-Range", ifRange)
	}
	resp, t, err := c.do(ctx, http.MethodGet, r, h)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (io.ReadCloser, error) {
		discard(resp)
		return nil, fmt.Errorf("GET %s bytes %d-%d: %w", t.redacted, off, off+n-1, err)
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if validatorChanged(resp.Header, ifRange, false) {
			return fail(ErrChanged)
		}
		if _, err := checkContentRange(resp, off, n); err != nil {
			return fail(err)
		}
		return newBody(resp.Body, n, true), nil
	case http.StatusOK:
		if validatorChanged(resp.Header, ifRange, true) {
			return fail(fmt.Errorf("%w: origin sent another version", ErrChanged))
		}
		if off > 0 {
			return fail(ErrRangeNotSupported)
		}
		switch {
		case resp.ContentLength < 0:
			return fail(fmt.Errorf("%w: whole body of unknown length", ErrRangeNotSupported))
		case resp.ContentLength < n:
			return fail(fmt.Errorf("%w: whole body of %d bytes is shorter than the range", ErrInvalidResponse, resp.ContentLength))
		}
		c.log.Debug("origin ignored the range; using the start of the whole body", "url", t.redacted, "length", n)
		return newBody(resp.Body, n, false), nil
	case http.StatusRequestedRangeNotSatisfiable:
		return fail(fmt.Errorf("%w: range not satisfiable", ErrChanged))
	default:
		return nil, statusError(resp, http.MethodGet, t)
	}
}

// checkContentRange verifies that a 206 response carries exactly the range
// [off, off+n): its Content-Range (parsed by protocol/httprange) and, when
// present, its Content-Length.
func checkContentRange(resp *http.Response, off, n int64) (httprange.ContentRange, error) {
	v := resp.Header.Get("Content-Range")
	cr, err := httprange.ParseContentRange(v)
	if err != nil {
		return cr, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	if cr.Start != off || cr.End != off+n-1 {
		return cr, fmt.Errorf("%w: Content-Range %q for bytes %d-%d", ErrInvalidResponse, truncate(v), off, off+n-1)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != n {
		return cr, fmt.Errorf("%w: Content-Length %d for a range of %d bytes", ErrInvalidResponse, resp.ContentLength, n)
	}
	return cr, nil
}

func isETag(v string) bool { return strings.HasPrefix(v, `"`) || isWeakETag(v) }

func isWeakETag(v string) bool { return strings.HasPrefix(v, `W/"`) }

// validatorChanged compares the response's validator of the kind of want
// (ETag or Last-Modified) with want. A missing validator counts as changed
// only when missingIsChange (a 200 to If-Range: the origin chose not to
// serve the range, and nothing shows the version is the same).
func validatorChanged(h http.Header, want string, missingIsChange bool) bool {
	if want == "" {
		return false
	}
	got := h.Get("Last-Modified")
	if isETag(want) {
		got = h.Get("ETag")
	}
	if got == "" {
		return missingIsChange
	}
	return got != want
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
