package protocol

import (
	"errors"
	"testing"
)

func TestAutoPieceLength(t *testing.T) {
	const MiB = 1 << 20
	tests := []struct {
		name   string
		length int64
		want   uint32
	}{
		{"empty", 0, 4 * MiB},
		{"small", 1, 4 * MiB},
		{"1 GiB", 1 << 30, 4 * MiB}, // 1 GiB/500 ≈ 2.05 MiB
		{"exactly 4 MiB per piece", 500 * 4 * MiB, 4 * MiB},
		{"just above 4 MiB per piece", 500*4*MiB + 500, 8 * MiB},
		{"10 GiB", 10 << 30, 32 * MiB}, // ≈ 20.5 MiB → 32 MiB
		{"16 GiB", 16 << 30, 64 * MiB}, // ≈ 32.8 MiB → 64 MiB
		{"1 TiB", 1 << 40, 64 * MiB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AutoPieceLength(tt.length); got != tt.want {
				t.Fatalf("AutoPieceLength(%d) = %d, want %d", tt.length, got, tt.want)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	l, err := NewLayout(10<<20+5, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	if l.PieceCount() != 3 {
		t.Fatalf("PieceCount = %d", l.PieceCount())
	}
	tests := []struct {
		n          uint32
		off        int64
		length     uint32
		outOfRange bool
	}{
		{0, 0, 4 << 20, false},
		{1, 4 << 20, 4 << 20, false},
		{2, 8 << 20, 2<<20 + 5, false},
		{3, 0, 0, true},
		{1 << 31, 0, 0, true},
	}
	for _, tt := range tests {
		off, length, err := l.Piece(tt.n)
		if tt.outOfRange {
			if !errors.Is(err, ErrPieceOutOfRange) {
				t.Errorf("Piece(%d) err = %v", tt.n, err)
			}
			continue
		}
		if err != nil || off != tt.off || length != tt.length {
			t.Errorf("Piece(%d) = %d, %d, %v; want %d, %d", tt.n, off, length, err, tt.off, tt.length)
		}
	}
	if n, err := l.PieceAt(8 << 20); err != nil || n != 2 {
		t.Errorf("PieceAt = %d, %v", n, err)
	}
	if _, err := l.PieceAt(l.ContentLength); !errors.Is(err, ErrPieceOutOfRange) {
		t.Errorf("PieceAt(end) err = %v", err)
	}
	empty, err := NewLayout(0, 0)
	if err != nil || empty.PieceCount() != 0 {
		t.Fatalf("empty layout: %+v %v", empty, err)
	}
}

func TestNewLayoutErrors(t *testing.T) {
	tests := []struct {
		name   string
		length int64
		piece  uint32
	}{
		{"negative", -1, 0},
		{"too large", MaxContentLength + 1, 0},
		{"not a power of two", 100, 3 << 20},
		{"below minimum", 100, 1024},
		{"above maximum", 100, 128 << 20},
		{"too many pieces", int64(MaxPieces+1) * MinPieceLength, MinPieceLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewLayout(tt.length, tt.piece); !errors.Is(err, ErrBadLayout) {
				t.Fatalf("err = %v, want ErrBadLayout", err)
			}
		})
	}
}
