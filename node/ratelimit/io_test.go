package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestNewReaderWriterPassThrough(t *testing.T) {
	var r io.Reader = bytes.NewReader(nil)
	var w io.Writer = &bytes.Buffer{}
	tests := []struct {
		name string
		ls   []*Limiter
	}{
		{"no limiters", nil},
		{"only nil limiters", []*Limiter{nil, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewReader(t.Context(), r, tt.ls...); got != r {
				t.Errorf("NewReader wrapped the reader (%T)", got)
			}
			if got := NewWriter(t.Context(), w, tt.ls...); got != w {
				t.Errorf("NewWriter wrapped the writer (%T)", got)
			}
		})
	}
}

// chunkRecorder records the size of every Write.
type chunkRecorder struct {
	bytes.Buffer
	sizes []int
}

func (c *chunkRecorder) Write(p []byte) (int, error) {
	c.sizes = append(c.sizes, len(p))
	return c.Buffer.Write(p)
}

func TestReaderWriterLimits(t *testing.T) {
	data := randomBytes(mib)
	tests := []struct {
		name      string
		limits    []int64 // -1: a nil limiter
		wantSleep time.Duration
		maxChunk  int
	}{
		{"unlimited limiter", []int64{0}, 0, mib},
		{"one limit", []int64{mib}, 750 * time.Millisecond, MinBurst},
		{"nil limiter ignored", []int64{-1, mib}, 750 * time.Millisecond, MinBurst},
		// Host 1 MiB/s (burst 256 KiB), task 256 KiB/s (burst 256 KiB):
		// the task limit dominates, 3 MiB/4 over 256 KiB/s = 3 s.
		{"two limits, the slower wins", []int64{mib, 256 * kib}, 3 * time.Second, MinBurst},
		{"small burst caps every step", []int64{100 * kib}, 9*time.Second + 240*time.Millisecond, 100 * kib},
	}
	for _, tt := range tests {
		for _, dir := range []string{"reader", "writer"} {
			t.Run(tt.name+"/"+dir, func(t *testing.T) {
				clk := newFakeClock()
				var ls []*Limiter
				for _, lim := range tt.limits {
					if lim < 0 {
						ls = append(ls, nil)
						continue
					}
					ls = append(ls, newWithClock(lim, clk))
				}
				dst := &chunkRecorder{}
				var err error
				if dir == "reader" {
					r := NewReader(t.Context(), bytes.NewReader(data), ls...)
					_, err = io.CopyBuffer(dst, r, make([]byte, mib))
				} else {
					_, err = NewWriter(t.Context(), dst, ls...).Write(data)
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(dst.Bytes(), data) {
					t.Fatal("data corrupted")
				}
				if got := clk.total(); !near(got, tt.wantSleep) {
					t.Errorf("slept %v, want %v", got, tt.wantSleep)
				}
				for _, s := range dst.sizes {
					if s > tt.maxChunk {
						t.Errorf("a step of %d bytes exceeds %d", s, tt.maxChunk)
					}
				}
			})
		}
	}
}

// near tolerates the float rounding of golang.org/x/time/rate.
func near(got, want time.Duration) bool {
	d := got - want
	return d > -time.Millisecond && d < time.Millisecond
}

func TestReaderWriterCanceled(t *testing.T) {
	clk := newFakeClock()
	l := newWithClock(mib, clk)
	if err := l.WaitN(t.Context(), MinBurst); err != nil { // drain
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	r := NewReader(ctx, bytes.NewReader(randomBytes(10)), l)
	n, err := r.Read(make([]byte, 10))
	if n != 10 || !errors.Is(err, context.Canceled) {
		t.Errorf("Read = %d, %v; want the bytes read and context.Canceled", n, err)
	}

	dst := &bytes.Buffer{}
	n, err = NewWriter(ctx, dst, l).Write(randomBytes(10))
	if n != 0 || dst.Len() != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("Write = %d, %v (%d bytes passed); want nothing written and context.Canceled", n, err, dst.Len())
	}
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

type failingWriter struct{}

var errBroken = errors.New("broken")

func (failingWriter) Write([]byte) (int, error) { return 0, errBroken }

func TestWriterErrors(t *testing.T) {
	tests := []struct {
		name string
		w    io.Writer
		want error
	}{
		{"short write", shortWriter{}, io.ErrShortWrite},
		{"failing writer", failingWriter{}, errBroken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWriter(t.Context(), tt.w, New(0)).Write([]byte("hello"))
			if !errors.Is(err, tt.want) {
				t.Errorf("Write = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestRealTime is the one wall-clock test: a token bucket lets at most
// burst + rate·t bytes through in t, so the copy cannot finish early. The
// upper bound only catches a limiter that never lets go.
func TestRealTime(t *testing.T) {
	const limit = 4 * mib
	l := New(limit)
	size := Burst(limit) + limit/2 // needs ≥ 500ms
	start := time.Now()
	n, err := io.Copy(io.Discard, NewReader(t.Context(), bytes.NewReader(make([]byte, size)), l))
	elapsed := time.Since(start)
	if err != nil || n != int64(size) {
		t.Fatalf("copy: %d bytes, %v", n, err)
	}
	if elapsed < 450*time.Millisecond || elapsed > 30*time.Second {
		t.Errorf("copying %d bytes at %d B/s took %v, want about 500ms", size, limit, elapsed)
	}
}
