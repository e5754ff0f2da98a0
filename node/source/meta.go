package source

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// metaOf reads the representation metadata of a 200 (or 304) response.
func metaOf(resp *http.Response) Meta {
	return Meta{
		ContentLength: resp.ContentLength,
		ETag:          resp.Header.Get("ETag"),
		LastModified:  resp.Header.Get("Last-Modified"),
		ContentType:   resp.Header.Get("Content-Type"),
		AcceptRanges:  acceptsBytes(resp.Header),
	}
}

func acceptsBytes(h http.Header) bool {
	for _, v := range h.Values("Accept-Ranges") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "bytes") {
				return true
			}
		}
	}
	return false
}

// headRefused: statuses some origins give HEAD while serving GET (405, 501,
// and 403 from URLs pre-signed for GET only).
func headRefused(code int) bool {
	return code == http.StatusMethodNotAllowed || code == http.StatusNotImplemented || code == http.StatusForbidden
}

// Stat returns the origin's metadata with a HEAD request, or with a GET of
// the first byte when the origin refuses HEAD (403, 405, 501) or leaves the
// length out of its HEAD answer.
func (c *Client) Stat(ctx context.Context, r Request) (Meta, error) {
	resp, t, err := c.do(ctx, http.MethodHead, r, nil)
	if err != nil {
		return Meta{}, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		discard(resp)
		m := metaOf(resp)
		if m.ContentLength < 0 {
			// Some origins omit the length from HEAD only.
			if pm, err := c.probe(ctx, r, nil); err == nil && pm.ContentLength >= 0 {
				return pm, nil
			}
		}
		return m, nil
	case headRefused(resp.StatusCode):
		discard(resp)
		c.log.Debug("origin refuses HEAD; probing with a one-byte GET", "url", t.redacted, "status", resp.StatusCode)
		return c.probe(ctx, r, nil)
	default:
		return Meta{}, statusError(resp, http.MethodHead, t)
	}
}

// probe sends GET with "Range: bytes=0-0" (plus extra headers) and reads the
// metadata from a 206, 200 or 416 answer.
func (c *Client) probe(ctx context.Context, r Request, extra http.Header) (Meta, error) {
	m, _, err := c.probeStatus(ctx, r, extra)
	return m, err
}

// probeStatus is probe that also returns the status, for Revalidate's 304.
func (c *Client) probeStatus(ctx context.Context, r Request, extra http.Header) (Meta, int, error) {
	h := http.Header{"Range": {"bytes=0-0"}}
	for k, v := range extra {
		h[k] = v
	}
	resp, t, err := c.do(ctx, http.MethodGet, r, h)
	if err != nil {
		return Meta{}, 0, err
	}
	defer discard(resp)
	m := metaOf(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		m.AcceptRanges = false // the Range header was ignored
	case http.StatusPartialContent:
		cr, err := checkContentRange(resp, 0, 1)
		if err != nil {
			return Meta{}, 0, fmt.Errorf("GET %s: %w", t.redacted, err)
		}
		m.ContentLength, m.AcceptRanges = cr.Size, true
	case http.StatusRequestedRangeNotSatisfiable:
		// Only an empty representation has no byte 0.
		m.ContentLength, m.AcceptRanges = 0, true
	case http.StatusNotModified:
		m.ContentLength = -1
	default:
		return Meta{}, 0, newHTTPError(http.MethodGet, t.redacted, resp.StatusCode)
	}
	return m, resp.StatusCode, nil
}

// Open fetches the whole representation. The body reports
// io.ErrUnexpectedEOF when it ends before Content-Length; reads are bounded
// by ctx. The caller closes it.
func (c *Client) Open(ctx context.Context, r Request) (io.ReadCloser, Meta, error) {
	resp, t, err := c.do(ctx, http.MethodGet, r, nil)
	if err != nil {
		return nil, Meta{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, Meta{}, statusError(resp, http.MethodGet, t)
	}
	return newBody(resp.Body, resp.ContentLength, true), metaOf(resp), nil
}

// Revalidate asks the origin whether the representation still matches etag
// (If-None-Match) or, without an ETag, lastModified (If-Modified-Since). It
// is true on 304 Not Modified, and also when an origin ignoring conditional
// requests sends the same validator back. Meta describes the current
// representation (ContentLength is -1 after a 304). With neither validator
// the copy cannot be proven fresh: notModified is false.
func (c *Client) Revalidate(ctx context.Context, r Request, etag, lastModified string) (notModified bool, m Meta, err error) {
	h := http.Header{}
	switch {
	case etag != "":
		h.Set("If-None-Match", etag)
	case lastModified != "":
		h.Set("If-Modified-Since", lastModified)
	}
	m, status, err := c.probeStatus(ctx, r, h)
	if err != nil {
		return false, Meta{}, err
	}
	if status == http.StatusNotModified {
		if m.ETag == "" {
			m.ETag = etag
		}
		if m.LastModified == "" {
			m.LastModified = lastModified
		}
		return true, m, nil
	}
	switch {
	case etag != "":
		return m.ETag == etag, m, nil
	case lastModified != "":
		return m.LastModified == lastModified, m, nil
	}
	return false, m, nil
}
