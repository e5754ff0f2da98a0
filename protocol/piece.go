package protocol

import (
	"errors"
	"fmt"
	"math/bits"
)

// Piece size limits.
const (
	// MinAutoPieceLength and MaxAutoPieceLength clamp the automatic rule.
	MinAutoPieceLength = 4 << 20
	MaxAutoPieceLength = 64 << 20
	// MinPieceLength and MaxPieceLength bound a piece length fixed by a caller.
	MinPieceLength = 16 << 10
	MaxPieceLength = 64 << 20
	// MaxPieces bounds the piece count of one task (and so every bitmap and
	// digest list a peer may send).
	MaxPieces = 1 << 20
	// MaxContentLength is the largest task: MaxPieces pieces of MaxPieceLength.
	MaxContentLength = int64(MaxPieces) * MaxPieceLength
)

// ErrBadLayout is returned for a content length / piece length pair outside
// the limits above.
var ErrBadLayout = errors.New("bad task layout")

// ErrPieceOutOfRange is returned for a piece number at or above the count.
var ErrPieceOutOfRange = errors.New("piece number out of range")

// AutoPieceLength is DESIGN.md §3's rule:
// clamp(next_pow2(contentLength/500), 4 MiB, 64 MiB).
func AutoPieceLength(contentLength int64) uint32 {
	target := contentLength / 500
	if target <= MinAutoPieceLength {
		return MinAutoPieceLength
	}
	if target > MaxAutoPieceLength/2 { // next_pow2 would reach or exceed the cap
		return MaxAutoPieceLength
	}
	p := uint64(1) << bits.Len64(uint64(target-1)) // next power of two ≥ target
	return uint32(p)
}

// CheckPieceLength validates a caller-fixed piece length: a power of two in
// [MinPieceLength, MaxPieceLength].
func CheckPieceLength(n uint32) error {
	if n < MinPieceLength || n > MaxPieceLength || n&(n-1) != 0 {
		return fmt.Errorf("%w: piece length %d is not a power of two in [%d, %d]",
			ErrBadLayout, n, MinPieceLength, MaxPieceLength)
	}
	return nil
}

// Layout is how a task's content is cut into pieces.
type Layout struct {
	ContentLength int64
	PieceLength   uint32
}

// NewLayout validates a layout; pieceLength 0 selects AutoPieceLength.
func NewLayout(contentLength int64, pieceLength uint32) (Layout, error) {
	if contentLength < 0 || contentLength > MaxContentLength {
		return Layout{}, fmt.Errorf("%w: content length %d outside [0, %d]", ErrBadLayout, contentLength, MaxContentLength)
	}
	if pieceLength == 0 {
		pieceLength = AutoPieceLength(contentLength)
	}
	if err := CheckPieceLength(pieceLength); err != nil {
		return Layout{}, err
	}
	l := Layout{ContentLength: contentLength, PieceLength: pieceLength}
	if l.pieceCount64() > MaxPieces {
		return Layout{}, fmt.Errorf("%w: %d pieces exceed the limit of %d", ErrBadLayout, l.pieceCount64(), MaxPieces)
	}
	return l, nil
}

func (l Layout) pieceCount64() int64 {
	return (l.ContentLength + int64(l.PieceLength) - 1) / int64(l.PieceLength)
}

// PieceCount is the number of pieces; 0 for empty content.
func (l Layout) PieceCount() uint32 { return uint32(l.pieceCount64()) }

// Piece returns the offset and length of piece n.
func (l Layout) Piece(n uint32) (offset int64, length uint32, err error) {
	if n >= l.PieceCount() {
		return 0, 0, fmt.Errorf("%w: %d ≥ %d", ErrPieceOutOfRange, n, l.PieceCount())
	}
	offset = int64(n) * int64(l.PieceLength)
	length = uint32(min(int64(l.PieceLength), l.ContentLength-offset))
	return offset, length, nil
}

// PieceAt returns the number of the piece holding byte off (0 ≤ off < ContentLength).
func (l Layout) PieceAt(off int64) (uint32, error) {
	if off < 0 || off >= l.ContentLength {
		return 0, fmt.Errorf("%w: offset %d outside [0, %d)", ErrPieceOutOfRange, off, l.ContentLength)
	}
	return uint32(off / int64(l.PieceLength)), nil
}
