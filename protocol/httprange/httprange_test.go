package httprange

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const size = 100
	tests := []struct {
		name    string
		header  string
		size    int64
		want    Range
		wantErr error
	}{
		{name: "closed", header: "bytes=0-9", size: size, want: Range{0, 10}},
		{name: "open", header: "bytes=90-", size: size, want: Range{90, 10}},
		{name: "whole open", header: "bytes=0-", size: size, want: Range{0, 100}},
		{name: "end clamped", header: "bytes=50-1000", size: size, want: Range{50, 50}},
		{name: "suffix", header: "bytes=-5", size: size, want: Range{95, 5}},
		{name: "suffix longer than size", header: "bytes=-500", size: size, want: Range{0, 100}},
		{name: "last byte", header: "bytes=99-99", size: size, want: Range{99, 1}},
		{name: "leading space", header: " bytes=1-2", size: size, want: Range{1, 2}},
		{name: "huge end saturates", header: "bytes=1-99999999999999999999999", size: size, want: Range{1, 99}},
		{name: "suffix zero", header: "bytes=-0", size: size, wantErr: ErrUnsatisfiable},
		{name: "start at size", header: "bytes=100-", size: size, wantErr: ErrUnsatisfiable},
		{name: "max int64 start", header: "bytes=9223372036854775807-", size: size, wantErr: ErrUnsatisfiable},
		{name: "overflowing start", header: "bytes=99999999999999999999999-", size: size, wantErr: ErrUnsatisfiable},
		{name: "empty representation", header: "bytes=0-", size: 0, wantErr: ErrUnsatisfiable},
		{name: "suffix of empty", header: "bytes=-5", size: 0, wantErr: ErrUnsatisfiable},
		{name: "double minus", header: "bytes=--5", size: size, wantErr: ErrIgnored},
		{name: "plus sign", header: "bytes=+5-", size: size, wantErr: ErrIgnored},
		{name: "plus in end", header: "bytes=0-+5", size: size, wantErr: ErrIgnored},
		{name: "reversed", header: "bytes=5-2", size: size, wantErr: ErrIgnored},
		{name: "other unit", header: "items=0-1", size: size, wantErr: ErrIgnored},
		{name: "no dash", header: "bytes=5", size: size, wantErr: ErrIgnored},
		{name: "negative start", header: "bytes=-5-10", size: size, wantErr: ErrIgnored},
		{name: "empty", header: "", size: size, wantErr: ErrIgnored},
		{name: "many ranges", header: "bytes=" + strings.Repeat("0-0,", 999) + "0-0", size: size, wantErr: ErrIgnored},
		{name: "two ranges", header: "bytes=0-1,5-6", size: size, wantErr: ErrIgnored},
		{name: "hex", header: "bytes=0x10-", size: size, wantErr: ErrIgnored},
		{name: "bare dash", header: "bytes=-", size: size, wantErr: ErrIgnored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.header, tt.size)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%q, %d) error = %v, want %v", tt.header, tt.size, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("Parse(%q, %d) = %+v, want %+v", tt.header, tt.size, got, tt.want)
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		want    ContentRange
		wantErr bool
	}{
		{name: "full", header: "bytes 0-9/100", want: ContentRange{0, 9, 100}},
		{name: "unknown size", header: "bytes 10-19/*", want: ContentRange{10, 19, -1}},
		{name: "end beyond size", header: "bytes 0-100/100", wantErr: true},
		{name: "reversed", header: "bytes 9-0/100", wantErr: true},
		{name: "unsatisfied form", header: "bytes */100", wantErr: true},
		{name: "negative", header: "bytes -1-5/100", wantErr: true},
		{name: "no unit", header: "0-9/100", wantErr: true},
		{name: "garbage size", header: "bytes 0-9/abc", wantErr: true},
		{name: "overflow", header: "bytes 0-99999999999999999999/*", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseContentRange(tt.header)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseContentRange(%q) error = %v, wantErr %v", tt.header, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("ParseContentRange(%q) = %+v, want %+v", tt.header, got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=--5", "bytes=0-0,1-1", "bytes=9223372036854775807-"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		r, err := Parse(header, size)
		if err != nil {
			return
		}
		if r.Start < 0 || r.Length < 1 || r.Start > size-r.Length {
			t.Fatalf("Parse(%q, %d) = %+v: outside [0, size)", header, size, r)
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/100", "bytes 0-9/*", "bytes */100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		cr, err := ParseContentRange(header)
		if err != nil {
			return
		}
		if cr.Start < 0 || cr.End < cr.Start || (cr.Size >= 0 && cr.End >= cr.Size) {
			t.Fatalf("ParseContentRange(%q) = %+v: inconsistent", header, cr)
		}
	})
}
