// Package units parses and prints human-readable byte sizes ("512MiB",
// "10GB", "1.5GiB") for configuration files and flags of every binary.
// ByteSize implements encoding.TextMarshaler/TextUnmarshaler (YAML, JSON)
// and pflag.Value.
package units

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes (or bytes per second, for rates).
type ByteSize int64

// Common sizes.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

// ErrBadSize is returned for an unparsable size.
var ErrBadSize = errors.New(`bad size: want a number with an optional unit (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB), e.g. "512MiB"`)

var suffixes = []struct {
	s string
	m float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// Parse parses "1024", "64KiB", "1.5GB", "10 MiB" (case-insensitive).
func Parse(s string) (ByteSize, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, ErrBadSize
	}
	mult := 1.0
	for _, suf := range suffixes {
		if strings.HasSuffix(t, suf.s) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, suf.s)), suf.m
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) || v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("%w: %q", ErrBadSize, s)
	}
	return ByteSize(v * mult), nil
}

// String prints the largest binary unit that keeps the value exact, or
// two decimals of it.
func (b ByteSize) String() string {
	for _, u := range []struct {
		n string
		v ByteSize
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if b >= u.v {
			if b%u.v == 0 {
				return fmt.Sprintf("%d%s", b/u.v, u.n)
			}
			return fmt.Sprintf("%.2f%s", float64(b)/float64(u.v), u.n)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(t []byte) error {
	v, err := Parse(string(t))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Set implements pflag.Value.
func (b *ByteSize) Set(s string) error { return b.UnmarshalText([]byte(s)) }

// Type implements pflag.Value.
func (b *ByteSize) Type() string { return "size" }
