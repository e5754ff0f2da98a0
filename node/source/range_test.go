package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// rangeReply answers any request with status, Content-Range cr, an optional
// Content-Length and body; chunked forces chunked encoding.
func rangeReply(status int, cr string, cl int, body []byte, chunked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if cr != "" {
			w.Header().Set("Content-Range", cr)
		}
		if cl >= 0 {
			w.Header().Set("Content-Length", strconv.Itoa(cl))
		}
		w.WriteHeader(status)
		if chunked {
			flush(w)
		}
		_, _ = w.Write(body)
	}
}

// truncated announces len(body) bytes, sends half and drops the connection.
func truncated(status int, cr string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if cr != "" {
			w.Header().Set("Content-Range", cr)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		_, _ = w.Write(body[:len(body)/2])
		flush(w)
		panic(http.ErrAbortHandler)
	}
}

func TestOpenRange(t *testing.T) {
	size := int64(len(testData))
	later := testMod.Add(time.Hour)
	slice := func(off, n int64) []byte { return testData[off : off+n] }
	cr := func(first, last int64) string { return fmt.Sprintf("bytes %d-%d/%d", first, last, size) }

	tests := []struct {
		name        string
		handler     http.HandlerFunc
		off, n      int64
		ifRange     string
		wantErr     error // from OpenRange
		wantReadErr error // from reading the body
		wantIfRange string
	}{
		{name: "range honoured", handler: serveContent(testData, `"v1"`, testMod), off: 1000, n: 5000},
		{name: "last bytes", handler: serveContent(testData, `"v1"`, testMod), off: size - 10, n: 10},
		{name: "whole content as a range", handler: serveContent(testData, `"v1"`, testMod), off: 0, n: size},
		{name: "If-Range ETag matches", handler: serveContent(testData, `"v1"`, testMod), off: 10, n: 100,
			ifRange: `"v1"`, wantIfRange: `"v1"`},
		{name: "If-Range date matches", handler: serveContent(testData, "", testMod), off: 10, n: 100,
			ifRange: testMod.Format(http.TimeFormat), wantIfRange: testMod.Format(http.TimeFormat)},
		{name: "If-Range ETag changed", handler: serveContent(testData, `"v2"`, testMod), off: 10, n: 100,
			ifRange: `"v1"`, wantErr: ErrChanged},
		{name: "If-Range date changed", handler: serveContent(testData, "", later), off: 10, n: 100,
			ifRange: testMod.Format(http.TimeFormat), wantErr: ErrChanged},
		{name: "If-Range changed at offset 0", handler: serveContent(testData, `"v2"`, testMod), off: 0, n: 100,
			ifRange: `"v1"`, wantErr: ErrChanged},
		{name: "206 with another ETag", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"v2"`)
			rangeReply(http.StatusPartialContent, cr(10, 109), 100, slice(10, 100), false)(w, r)
		}, off: 10, n: 100, ifRange: `"v1"`, wantErr: ErrChanged},
		{name: "weak ETag compared, not sent", handler: serveContent(testData, `W/"v1"`, testMod), off: 10, n: 100,
			ifRange: `W/"v1"`},
		{name: "weak ETag changed", handler: serveContent(testData, `W/"v2"`, testMod), off: 10, n: 100,
			ifRange: `W/"v1"`, wantErr: ErrChanged},
		{name: "200 without validator to If-Range", handler: rangeReply(http.StatusOK, "", -1, testData, false),
			off: 0, n: 10, ifRange: `"v1"`, wantErr: ErrChanged},
		{name: "200 instead of 206 at offset > 0", handler: rangeReply(http.StatusOK, "", -1, testData, false),
			off: 1, n: 10, wantErr: ErrRangeNotSupported},
		{name: "200 instead of 206 at offset 0 is cut to the range", handler: rangeReply(http.StatusOK, "", len(testData), testData, false),
			off: 0, n: 1000},
		{name: "200 at offset 0 shorter than the range", handler: rangeReply(http.StatusOK, "", 500, testData[:500], false),
			off: 0, n: 1000, wantErr: ErrInvalidResponse},
		{name: "200 at offset 0 of unknown length", handler: rangeReply(http.StatusOK, "", -1, testData, true),
			off: 0, n: 1000, wantErr: ErrRangeNotSupported},
		{name: "wrong start", handler: rangeReply(http.StatusPartialContent, cr(11, 110), 100, slice(11, 100), false),
			off: 10, n: 100, wantErr: ErrInvalidResponse},
		{name: "wrong end", handler: rangeReply(http.StatusPartialContent, cr(10, 108), 99, slice(10, 99), false),
			off: 10, n: 100, wantErr: ErrInvalidResponse},
		{name: "malformed Content-Range", handler: rangeReply(http.StatusPartialContent, "bytes 10-x/100", 100, slice(10, 100), false),
			off: 10, n: 100, wantErr: ErrInvalidResponse},
		{name: "missing Content-Range", handler: rangeReply(http.StatusPartialContent, "", 100, slice(10, 100), false),
			off: 10, n: 100, wantErr: ErrInvalidResponse},
		{name: "Content-Range end beyond size", handler: rangeReply(http.StatusPartialContent, "bytes 10-109/50", 100, slice(10, 100), false),
			off: 10, n: 100, wantErr: ErrInvalidResponse},
		{name: "Content-Length contradicts Content-Range", handler: rangeReply(http.StatusPartialContent, cr(10, 109), 105, slice(10, 105), false),
			off: 10, n: 100, wantErr: ErrInvalidResponse},
		{name: "unknown total size is fine", handler: rangeReply(http.StatusPartialContent, "bytes 10-109/*", 100, slice(10, 100), false),
			off: 10, n: 100},
		{name: "truncated body", handler: truncated(http.StatusPartialContent, cr(10, 1009), slice(10, 1000)),
			off: 10, n: 1000, wantReadErr: io.ErrUnexpectedEOF},
		{name: "truncated chunked body", handler: rangeReply(http.StatusPartialContent, cr(10, 1009), -1, slice(10, 500), true),
			off: 10, n: 1000, wantReadErr: io.ErrUnexpectedEOF},
		{name: "overlong chunked body", handler: rangeReply(http.StatusPartialContent, cr(10, 1009), -1, slice(10, 1100), true),
			off: 10, n: 1000, wantReadErr: ErrInvalidResponse},
		{name: "chunked body of the right length", handler: rangeReply(http.StatusPartialContent, cr(10, 1009), -1, slice(10, 1000), true),
			off: 10, n: 1000},
		{name: "416: content shrank", handler: rangeReply(http.StatusRequestedRangeNotSatisfiable, "bytes */5", -1, nil, false),
			off: 10, n: 100, wantErr: ErrChanged},
		{name: "404", handler: http.NotFound, off: 0, n: 10, wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, tt.handler)
			c := newClient(t)
			body, err := c.OpenRange(t.Context(), Request{URL: o.URL + "/blob"}, tt.off, tt.n, tt.ifRange)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("OpenRange error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got, err := readAll(t, body)
			if !errors.Is(err, tt.wantReadErr) {
				t.Fatalf("read error = %v, want %v", err, tt.wantReadErr)
			}
			if err != nil {
				return
			}
			if want := slice(tt.off, tt.n); !bytes.Equal(got, want) {
				t.Errorf("got %d bytes, want %d bytes [%d, %d)", len(got), len(want), tt.off, tt.off+tt.n)
			}
			h := o.header("/blob")
			if got, want := h.Get("Range"), fmt.Sprintf("bytes=%d-%d", tt.off, tt.off+tt.n-1); got != want {
				t.Errorf("server saw Range %q, want %q", got, want)
			}
			if got := h.Get("If-Range"); got != tt.wantIfRange {
				t.Errorf("server saw If-Range %q, want %q", got, tt.wantIfRange)
			}
		})
	}
}

func TestOpenRangeInvalidArguments(t *testing.T) {
	o := startOrigin(t, serveContent(testData, "", testMod))
	c := newClient(t)
	tests := []struct {
		name   string
		off, n int64
	}{
		{"negative offset", -1, 10},
		{"zero length", 0, 0},
		{"negative length", 0, -5},
		{"overflowing end", math.MaxInt64, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.OpenRange(t.Context(), Request{URL: o.URL}, tt.off, tt.n, "")
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("OpenRange(%d, %d) = %v, want ErrInvalidRequest", tt.off, tt.n, err)
			}
		})
	}
	if n := o.hits.Load(); n != 0 {
		t.Errorf("server got %d requests for invalid ranges", n)
	}
}

// TestOpenRangeConcurrent fetches every piece at once, as the daemon does.
func TestOpenRangeConcurrent(t *testing.T) {
	o := startOrigin(t, serveContent(testData, `"v1"`, testMod))
	c := newClient(t)
	const piece = 4 << 10
	got := make([]byte, len(testData))
	var wg sync.WaitGroup
	errs := make(chan error, len(testData)/piece)
	for off := 0; off < len(testData); off += piece {
		wg.Go(func() {
			body, err := c.OpenRange(t.Context(), Request{URL: o.URL}, int64(off), piece, `"v1"`)
			if err != nil {
				errs <- err
				return
			}
			defer body.Close()
			if _, err := io.ReadFull(body, got[off:off+piece]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !bytes.Equal(got, testData) {
		t.Error("reassembled content differs")
	}
}
