package ratelimit

import (
	"context"
	"io"
)

// NewReader returns a reader that, after every Read, waits on each non-nil
// limiter for the bytes just read (the data has arrived, the wait slows the
// next read and so the sender, through flow control). Reads are capped at
// the smallest burst of the limiters then limited, so one Read never waits
// for more than a burst. ctx bounds the waits; a wait that fails is
// returned together with the bytes already read.
//
// With no non-nil limiter NewReader returns r itself: nothing is added to
// the unlimited path. Limiters that are merely unlimited right now still
// wrap r, so that a later SetLimit takes effect on open streams; they cost
// one atomic load per Read.
func NewReader(ctx context.Context, r io.Reader, ls ...*Limiter) io.Reader {
	active := nonNil(ls)
	if len(active) == 0 {
		return r
	}
	return &reader{ctx: ctx, r: r, ls: active}
}

// NewWriter returns a writer that waits on each non-nil limiter before
// passing bytes on to w, in steps of at most the smallest burst. ctx bounds
// the waits. With no non-nil limiter NewWriter returns w itself.
func NewWriter(ctx context.Context, w io.Writer, ls ...*Limiter) io.Writer {
	active := nonNil(ls)
	if len(active) == 0 {
		return w
	}
	return &writer{ctx: ctx, w: w, ls: active}
}

func nonNil(ls []*Limiter) []*Limiter {
	var out []*Limiter
	for _, l := range ls {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}

// step returns the largest transfer one wait may cover: the smallest burst
// among the limited limiters, or 0 when none is limited right now.
func step(ls []*Limiter) int {
	s := 0
	for _, l := range ls {
		if b := l.burst(); b > 0 && (s == 0 || b < s) {
			s = b
		}
	}
	return s
}

func waitAll(ctx context.Context, ls []*Limiter, n int) error {
	for _, l := range ls {
		if err := l.WaitN(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

type reader struct {
	ctx context.Context
	r   io.Reader
	ls  []*Limiter
}

func (r *reader) Read(p []byte) (int, error) {
	if s := step(r.ls); s > 0 && len(p) > s {
		p = p[:s]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := waitAll(r.ctx, r.ls, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

type writer struct {
	ctx context.Context
	w   io.Writer
	ls  []*Limiter
}

func (w *writer) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := len(p)
		if s := step(w.ls); s > 0 && chunk > s {
			chunk = s
		}
		if err := waitAll(w.ctx, w.ls, chunk); err != nil {
			return written, err
		}
		n, err := w.w.Write(p[:chunk])
		written += n
		if err != nil {
			return written, err
		}
		if n < chunk {
			return written, io.ErrShortWrite
		}
		p = p[chunk:]
	}
	return written, nil
}
