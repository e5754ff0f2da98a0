package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// DigestAlgorithm is the only digest algorithm dragonfly accepts anywhere.
const DigestAlgorithm = "sha256"

// ErrBadDigest is returned for a digest that is not "sha256:" followed by
// exactly 64 lowercase hex characters. md5, sha1, sha512 and every other
// algorithm are refused: SHA-256 is the only integrity check we trust.
var ErrBadDigest = errors.New("bad digest: want sha256:<64 lowercase hex>")

// Digest is a SHA-256 digest.
type Digest [sha256.Size]byte

// SHA256 returns the digest of b.
func SHA256(b []byte) Digest { return sha256.Sum256(b) }

// ParseDigest parses the OCI form "sha256:<64 lowercase hex>".
func ParseDigest(s string) (Digest, error) {
	hexPart, ok := strings.CutPrefix(s, DigestAlgorithm+":")
	if !ok {
		return Digest{}, fmt.Errorf("%w: %q", ErrBadDigest, truncate(s))
	}
	return parseHex32(hexPart, ErrBadDigest)
}

// DigestFromBytes converts a 32-byte wire field.
func DigestFromBytes(b []byte) (Digest, error) {
	var d Digest
	if len(b) != len(d) {
		return d, fmt.Errorf("%w: %d bytes", ErrBadDigest, len(b))
	}
	copy(d[:], b)
	return d, nil
}

// String returns the OCI form "sha256:<hex>".
func (d Digest) String() string { return DigestAlgorithm + ":" + hex.EncodeToString(d[:]) }

// Hex returns the 64 lowercase hex characters.
func (d Digest) Hex() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is the zero value (no digest).
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText implements encoding.TextMarshaler (OCI form).
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (OCI form only).
func (d *Digest) UnmarshalText(b []byte) error {
	v, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// parseHex32 decodes exactly 64 lowercase hex characters.
func parseHex32(s string, sentinel error) ([32]byte, error) {
	var out [32]byte
	if len(s) != 64 {
		return out, fmt.Errorf("%w: %d hex characters", sentinel, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return out, fmt.Errorf("%w: character %q at %d", sentinel, c, i)
		}
	}
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		return out, fmt.Errorf("%w: %v", sentinel, err)
	}
	return out, nil
}

// truncate keeps untrusted input short enough for an error message.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
