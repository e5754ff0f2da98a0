package source

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// refuseHead answers HEAD with status and passes other methods to h.
func refuseHead(status int, h http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.WriteHeader(status)
			return
		}
		h.ServeHTTP(w, r)
	}
}

// noRanges serves data whole whatever the request, without Accept-Ranges.
func noRanges(data []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("ETag", `"v1"`)
		_, _ = w.Write(data)
	}
}

func TestStat(t *testing.T) {
	size := int64(len(testData))
	mod := testMod.Format(http.TimeFormat)
	full := Meta{ContentLength: size, ETag: `"v1"`, LastModified: mod, ContentType: "application/octet-stream", AcceptRanges: true}
	tests := []struct {
		name    string
		handler http.Handler
		want    Meta
		wantErr error
		hits    int64
	}{
		{name: "HEAD", handler: serveContent(testData, `"v1"`, testMod), want: full, hits: 1},
		{name: "HEAD not allowed: one-byte GET", handler: refuseHead(http.StatusMethodNotAllowed, serveContent(testData, `"v1"`, testMod)), want: full, hits: 2},
		{name: "HEAD not implemented: one-byte GET", handler: refuseHead(http.StatusNotImplemented, serveContent(testData, `"v1"`, testMod)), want: full, hits: 2},
		{name: "HEAD forbidden (URL signed for GET)", handler: refuseHead(http.StatusForbidden, serveContent(testData, `"v1"`, testMod)), want: full, hits: 2},
		{name: "origin without ranges", handler: refuseHead(http.StatusMethodNotAllowed, noRanges(testData)),
			want: Meta{ContentLength: size, ETag: `"v1"`, ContentType: "application/octet-stream"}, hits: 2},
		// net/http answers a range of empty content with a 200.
		{name: "empty content", handler: refuseHead(http.StatusMethodNotAllowed, serveContent(nil, `"e"`, testMod)),
			want: Meta{ContentLength: 0, ETag: `"e"`, LastModified: mod, ContentType: "application/octet-stream"}, hits: 2},
		{name: "empty content answered with 416", handler: refuseHead(http.StatusMethodNotAllowed,
			rangeReply(http.StatusRequestedRangeNotSatisfiable, "bytes */0", -1, nil, false)),
			want: Meta{ContentLength: 0, AcceptRanges: true}, hits: 2},
		{name: "unknown length", handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Accept-Ranges", "none")
			w.WriteHeader(http.StatusOK)
			flush(w)
		}), want: Meta{ContentLength: -1}, hits: 2},
		{name: "length missing from HEAD only", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusOK)
				return
			}
			serveContent(testData, `"v1"`, testMod)(w, r)
		}), want: full, hits: 2},
		{name: "probe with a wrong Content-Range", handler: refuseHead(http.StatusMethodNotAllowed,
			rangeReply(http.StatusPartialContent, "bytes 5-5/10", 1, []byte("x"), false)), wantErr: ErrInvalidResponse, hits: 2},
		{name: "not found", handler: http.NotFoundHandler(), wantErr: ErrNotFound, hits: 1},
		{name: "forbidden for GET too", handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusForbidden)
		}), wantErr: ErrForbidden, hits: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, tt.handler)
			got, err := newClient(t).Stat(t.Context(), Request{URL: o.URL})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Stat error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); err == nil && diff != "" {
				t.Errorf("Stat (-want +got):\n%s", diff)
			}
			if n := o.hits.Load(); n != tt.hits {
				t.Errorf("server got %d requests, want %d", n, tt.hits)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name        string
		handler     http.HandlerFunc
		want        []byte
		wantLength  int64
		wantErr     error
		wantReadErr error
	}{
		{name: "whole body", handler: serveContent(testData, `"v1"`, testMod), want: testData, wantLength: int64(len(testData))},
		{name: "unknown length", handler: rangeReply(http.StatusOK, "", -1, testData, true), want: testData, wantLength: -1},
		{name: "truncated", handler: truncated(http.StatusOK, "", testData), wantLength: int64(len(testData)), wantReadErr: io.ErrUnexpectedEOF},
		{name: "206 to a plain GET", handler: rangeReply(http.StatusPartialContent, "bytes 0-9/100", 10, testData[:10], false), wantErr: ErrUnexpectedStatus},
		{name: "not found", handler: http.NotFound, wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, tt.handler)
			body, meta, err := newClient(t).Open(t.Context(), Request{URL: o.URL})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if meta.ContentLength != tt.wantLength {
				t.Errorf("ContentLength = %d, want %d", meta.ContentLength, tt.wantLength)
			}
			got, err := readAll(t, body)
			if !errors.Is(err, tt.wantReadErr) {
				t.Fatalf("read error = %v, want %v", err, tt.wantReadErr)
			}
			if err == nil && !bytes.Equal(got, tt.want) {
				t.Errorf("got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

// ignoresConditionals always answers 200 with the whole content.
func ignoresConditionals(etag string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Length", strconv.Itoa(len(testData)))
		_, _ = w.Write(testData)
	}
}

func TestRevalidate(t *testing.T) {
	mod := testMod.Format(http.TimeFormat)
	tests := []struct {
		name            string
		handler         http.HandlerFunc
		etag, lastMod   string
		wantNotModified bool
		wantETag        string
		wantErr         error
		wantIfNoneMatch string
		wantIfModSince  string
	}{
		{name: "ETag unchanged: 304", handler: serveContent(testData, `"v1"`, testMod), etag: `"v1"`, lastMod: mod,
			wantNotModified: true, wantETag: `"v1"`, wantIfNoneMatch: `"v1"`},
		{name: "Last-Modified unchanged: 304", handler: serveContent(testData, "", testMod), lastMod: mod,
			wantNotModified: true, wantIfModSince: mod},
		{name: "ETag changed", handler: serveContent(testData, `"v2"`, testMod), etag: `"v1"`,
			wantETag: `"v2"`, wantIfNoneMatch: `"v1"`},
		{name: "Last-Modified changed", handler: serveContent(testData, "", testMod.Add(time.Hour)), lastMod: mod,
			wantIfModSince: mod},
		{name: "origin ignores conditionals, same ETag", handler: ignoresConditionals(`"v1"`), etag: `"v1"`,
			wantNotModified: true, wantETag: `"v1"`, wantIfNoneMatch: `"v1"`},
		{name: "origin ignores conditionals, other ETag", handler: ignoresConditionals(`"v2"`), etag: `"v1"`,
			wantETag: `"v2"`, wantIfNoneMatch: `"v1"`},
		{name: "no validator", handler: serveContent(testData, `"v1"`, testMod), wantETag: `"v1"`},
		{name: "not found", handler: http.NotFound, etag: `"v1"`, wantErr: ErrNotFound, wantIfNoneMatch: `"v1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, tt.handler)
			same, meta, err := newClient(t).Revalidate(t.Context(), Request{URL: o.URL + "/x"}, tt.etag, tt.lastMod)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Revalidate error = %v, want %v", err, tt.wantErr)
			}
			if same != tt.wantNotModified {
				t.Errorf("notModified = %v, want %v", same, tt.wantNotModified)
			}
			if err == nil && meta.ETag != tt.wantETag {
				t.Errorf("ETag = %q, want %q", meta.ETag, tt.wantETag)
			}
			h := o.header("/x")
			if got := h.Get("If-None-Match"); got != tt.wantIfNoneMatch {
				t.Errorf("server saw If-None-Match %q, want %q", got, tt.wantIfNoneMatch)
			}
			if got := h.Get("If-Modified-Since"); got != tt.wantIfModSince {
				t.Errorf("server saw If-Modified-Since %q, want %q", got, tt.wantIfModSince)
			}
		})
	}
}
