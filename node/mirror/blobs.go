package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/dragonfly-p2p/df/protocol/httprange"
)

// serveBlob answers GET|HEAD /v2/<name>/blobs/<digest> from the cluster,
// once the registry confirmed the caller may read it. Headers go out when
// the size is known (small blobs: when verified); the body streams as
// verified pieces arrive, its last byte only after the whole-content
// digest matched.
func (m *Mirror) serveBlob(ctx context.Context, w http.ResponseWriter, q *request) error {
	// The download starts only once the caller was confirmed (public
	// repositories included): a refused caller, or a digest requested
	// through a repository it does not belong to, must not make the node
	// fetch anything — from peers or the registry — that others would then
	// join. The verdict is cached per credential and repository, so only
	// the first request of a pull pays the registry round trip.
	if err := m.authorize(ctx, q); err != nil {
		return err
	}
	authz, err := m.sourceAuth(ctx, q)
	if err != nil {
		return err
	}
	job, err := m.start(contentRequest(q.reg, q.rt.name, "blobs", q.rt.digest, authz))
	if err != nil {
		return err
	}
	defer job.Release()

	rctx, cancel := context.WithTimeout(ctx, m.cfg.ReadyTimeout)
	defer cancel()
	if err := waitReady(rctx, job); err != nil {
		return err
	}
	size := job.Layout().ContentLength
	if m.cfg.MaxBlobSize > 0 && size > int64(m.cfg.MaxBlobSize) {
		return fmt.Errorf("%w: %d bytes (at most %d)", ErrBlobTooLarge, size, m.cfg.MaxBlobSize)
	}
	etag := `"` + q.rt.digest.String() + `"`
	start, n, status := byteRange(q.r.Header.Values("Range"), q.r.Header.Get("If-Range"), etag, size)

	h := w.Header()
	h.Set("Docker-Content-Digest", q.rt.digest.String())
	h.Set("ETag", etag)
	h.Set("Accept-Ranges", "bytes")
	if status == http.StatusRequestedRangeNotSatisfiable {
		h.Set("Content-Range", httprange.Unsatisfied(size))
		ociError{status: status, code: "RANGE_INVALID", message: "range not satisfiable for a blob of " + strconv.FormatInt(size, 10) + " bytes"}.write(w, q.head)
		return nil
	}
	if !q.head && size <= int64(m.cfg.SmallBlobSize) {
		// Small: verify all of it first, so a failure is a clean status
		// the runtime falls back on.
		if err := waitComplete(rctx, job); err != nil {
			return err
		}
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	if status == http.StatusPartialContent {
		h.Set("Content-Range", httprange.Range{Start: start, Length: n}.ContentRange(size))
	}
	w.WriteHeader(status)
	if q.head {
		return nil
	}
	written, err := streamBlob(ctx, w, job, start, n)
	m.metrics.servedBytes(job.Stats(), written)
	return err
}

// streamBlob writes [start, start+n) and holds the last byte back until the
// whole content is verified: the body never ends cleanly on bytes that did
// not match the digest.
func streamBlob(ctx context.Context, hw http.ResponseWriter, job Job, start, n int64) (int64, error) {
	bw := bigWriter{w: hw, buf: copyBufs.Get().(*[]byte)}
	defer copyBufs.Put(bw.buf)
	w := io.Writer(bw)
	var written int64
	if n > 1 {
		c, err := job.WriteTo(ctx, w, start, n-1)
		written += c
		if err != nil {
			return written, fmt.Errorf("stream blob: %w", classifyDownload(err))
		}
	}
	if err := waitComplete(ctx, job); err != nil {
		return written, err
	}
	if n > 0 {
		c, err := job.WriteTo(ctx, w, start+n-1, 1)
		written += c
		if err != nil {
			return written, fmt.Errorf("stream blob: %w", classifyDownload(err))
		}
	}
	return written, nil
}

// byteRange decides what to send of a size-byte blob: all (200), one range
// (206) or nothing (416). Ranges follow RFC 9110 through httprange: a
// malformed, multi-range or repeated Range header is ignored (200), and an
// If-Range that does not name this blob's ETag asks for the whole blob.
func byteRange(ranges []string, ifRange, etag string, size int64) (start, n int64, status int) {
	if len(ranges) != 1 || (ifRange != "" && ifRange != etag) {
		return 0, size, http.StatusOK
	}
	r, err := httprange.Parse(ranges[0], size)
	switch {
	case errors.Is(err, httprange.ErrUnsatisfiable):
		return 0, 0, http.StatusRequestedRangeNotSatisfiable
	case err != nil:
		return 0, size, http.StatusOK
	}
	return r.Start, r.Length, http.StatusPartialContent
}

// copyBufs holds the buffers blobs are copied to clients with: 1 MiB reads
// of the store and 1 MiB writes to the connection instead of io.Copy's
// 32 KiB (a warm pull's throughput is bound by the syscall count).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// bigWriter copies from readers with its own large buffer.
type bigWriter struct {
	w   io.Writer
	buf *[]byte
}

func (b bigWriter) Write(p []byte) (int, error) { return b.w.Write(p) }

// ReadFrom copies r to the underlying writer through the large buffer (the
// underlying writer's own ReadFrom is hidden so that its small buffer is
// not used).
func (b bigWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{b.w}, r, *b.buf)
}
