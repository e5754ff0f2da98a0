// Package httprange parses HTTP byte ranges (RFC 9110 §14) from untrusted
// clients and servers: the Range request header and the Content-Range
// response header. Results are always within [0, size): no negative lengths,
// no wrapped offsets, and a many-range header is answered with the whole
// representation rather than amplified.
package httprange

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Errors returned by Parse. Callers answer ErrUnsatisfiable with 416 (and a
// "Content-Range: bytes */size" header) and ErrIgnored with a full 200.
var (
	// ErrUnsatisfiable: the range is well formed but selects no byte.
	ErrUnsatisfiable = errors.New("range not satisfiable")
	// ErrIgnored: the header is absent, malformed, uses another unit or asks
	// for several ranges; RFC 9110 lets a server ignore it.
	ErrIgnored = errors.New("range header ignored")
)

// ErrBadContentRange is returned by ParseContentRange for a malformed or
// inconsistent Content-Range header.
var ErrBadContentRange = errors.New("bad Content-Range header")

// Range is a satisfiable byte range: Start ≥ 0, Length ≥ 1, Start+Length ≤ size.
type Range struct {
	Start  int64
	Length int64
}

// End returns the last byte's offset (inclusive).
func (r Range) End() int64 { return r.Start + r.Length - 1 }

// ContentRange formats the Content-Range value for a 206 response.
func (r Range) ContentRange(size int64) string {
	return fmt.Sprintf("bytes %d-%d/%d", r.Start, r.End(), size)
}

// Unsatisfied formats the Content-Range value for a 416 response.
func Unsatisfied(size int64) string { return fmt.Sprintf("bytes */%d", size) }

// maxHeaderLength bounds the work done on a Range header.
const maxHeaderLength = 1024

// Parse interprets a Range header against a representation of size bytes.
func Parse(header string, size int64) (Range, error) {
	h := strings.TrimSpace(header)
	if h == "" || len(h) > maxHeaderLength || size < 0 {
		return Range{}, ErrIgnored
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return Range{}, ErrIgnored
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return Range{}, ErrIgnored
	}
	if first == "" { // suffix range: bytes=-N
		n, ok := parseDigits(last)
		if !ok {
			return Range{}, ErrIgnored
		}
		if n == 0 || size == 0 {
			return Range{}, ErrUnsatisfiable
		}
		n = min(n, size)
		return Range{Start: size - n, Length: n}, nil
	}
	start, ok := parseDigits(first)
	if !ok {
		return Range{}, ErrIgnored
	}
	end := int64(math.MaxInt64)
	if last != "" {
		if end, ok = parseDigits(last); !ok || end < start {
			return Range{}, ErrIgnored
		}
	}
	if start >= size {
		return Range{}, ErrUnsatisfiable
	}
	end = min(end, size-1)
	return Range{Start: start, Length: end - start + 1}, nil
}

// parseDigits parses a non-empty run of ASCII digits; values beyond int64
// saturate at math.MaxInt64 (they are clamped or unsatisfiable anyway).
func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 64 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + d
	}
	return n, true
}

// ContentRange is a parsed Content-Range response header.
type ContentRange struct {
	Start, End int64 // inclusive
	// Size is the complete length, or -1 when the server sent "*".
	Size int64
}

// ParseContentRange parses "bytes first-last/size" (size may be "*").
func ParseContentRange(header string) (ContentRange, error) {
	h := strings.TrimSpace(header)
	spec, ok := strings.CutPrefix(h, "bytes ")
	if !ok || len(h) > maxHeaderLength {
		return ContentRange{}, fmt.Errorf("%w: %q", ErrBadContentRange, limit(h))
	}
	rng, sizeStr, ok := strings.Cut(spec, "/")
	if !ok {
		return ContentRange{}, fmt.Errorf("%w: no size in %q", ErrBadContentRange, limit(h))
	}
	cr := ContentRange{Size: -1}
	if sizeStr != "*" {
		n, ok := parseDigits(sizeStr)
		if !ok || n == math.MaxInt64 {
			return ContentRange{}, fmt.Errorf("%w: size in %q", ErrBadContentRange, limit(h))
		}
		cr.Size = n
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return ContentRange{}, fmt.Errorf("%w: range in %q", ErrBadContentRange, limit(h))
	}
	var okA, okB bool
	cr.Start, okA = parseDigits(a)
	cr.End, okB = parseDigits(b)
	if !okA || !okB || cr.End < cr.Start || cr.End == math.MaxInt64 || (cr.Size >= 0 && cr.End >= cr.Size) {
		return ContentRange{}, fmt.Errorf("%w: range in %q", ErrBadContentRange, limit(h))
	}
	return cr, nil
}

func limit(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
