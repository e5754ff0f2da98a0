package units

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "1024", want: 1024},
		{in: "64KiB", want: 64 << 10},
		{in: "10 MiB", want: 10 << 20},
		{in: "1.5GiB", want: 3 << 29},
		{in: "1GB", want: 1e9},
		{in: "2g", want: 2 << 30},
		{in: "100b", want: 100},
		{in: "", bad: true},
		{in: "-1MiB", bad: true},
		{in: "abc", bad: true},
		{in: "1XB", bad: true},
		{in: "NaN", bad: true},
		{in: "1e30TiB", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.bad {
				if !errors.Is(err, ErrBadSize) {
					t.Fatalf("Parse(%q) err = %v, want ErrBadSize", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestStringRoundTrip(t *testing.T) {
	for _, b := range []ByteSize{0, 1, 1023, KiB, 3 * MiB, 5 * GiB, 2 * TiB, 1536} {
		back, err := Parse(b.String())
		if err != nil {
			t.Fatalf("%d → %q: %v", b, b.String(), err)
		}
		if b%KiB == 0 || b < KiB {
			if back != b {
				t.Fatalf("%d → %q → %d", b, b.String(), back)
			}
		}
	}
}
