package ratelimit

import (
	"bytes"
	"io"
	"testing"
)

// onlyReader hides bytes.Reader's WriteTo so that every variant copies
// through the same 32 KiB buffer loop.
type onlyReader struct{ io.Reader }

// onlyWriter hides io.Discard's ReadFrom for the same reason.
type onlyWriter struct{ io.Writer }

// BenchmarkCopyUnlimited compares a plain io.Copy with the unlimited paths:
// no limiter at all (NewReader returns the reader itself) and a limiter
// whose limit is 0 (one atomic load per Read).
func BenchmarkCopyUnlimited(b *testing.B) {
	data := make([]byte, 64<<20)
	cases := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"nil-limiter", func(r io.Reader) io.Reader { return NewReader(b.Context(), r, nil) }},
		{"unlimited-limiter", func(r io.Reader) io.Reader { return NewReader(b.Context(), r, New(0)) }},
		{"unlimited-host-and-task", func(r io.Reader) io.Reader { return NewReader(b.Context(), r, New(0), New(0)) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				r := c.wrap(onlyReader{bytes.NewReader(data)})
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteUnlimited is the same comparison for NewWriter.
func BenchmarkWriteUnlimited(b *testing.B) {
	data := make([]byte, 64<<20)
	cases := []struct {
		name string
		wrap func(io.Writer) io.Writer
	}{
		{"plain", func(w io.Writer) io.Writer { return w }},
		{"unlimited-limiter", func(w io.Writer) io.Writer { return NewWriter(b.Context(), w, New(0)) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				w := c.wrap(onlyWriter{io.Discard})
				if _, err := io.Copy(w, onlyReader{bytes.NewReader(data)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
