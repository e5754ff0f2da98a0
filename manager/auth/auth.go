// Package auth holds the manager's credentials logic: bcrypt password
// hashes, HS256 JSON Web Tokens for sessions and hashed, scoped, expiring
// personal access tokens.
//
// JWTs are signed with a small hand-rolled HS256 (RFC 7519 subset) instead
// of a JWT library: the manager only ever issues and accepts one algorithm,
// so the verifier pins the header to HS256 (no "none", no RS/HS confusion),
// compares MACs with hmac.Equal and checks exp/nbf itself; about sixty lines
// with no new dependency. The signing key comes from the configuration or is
// generated at first start and kept in the store; there is no built-in key.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Sentinel errors.
var (
	// ErrInvalidToken is returned for a malformed, forged or wrongly signed token.
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrExpired is returned for a token past its expiry.
	ErrExpired = errors.New("auth: token expired")
	// ErrBadPassword is returned when a password does not match.
	ErrBadPassword = errors.New("auth: wrong password")
	// ErrWeakKey is returned for a signing key shorter than MinKeyLen.
	ErrWeakKey = errors.New("auth: signing key too short")
	// ErrWeakPassword is returned for a password that breaks the policy.
	ErrWeakPassword = errors.New("auth: password too weak")
)

// DefaultBcryptCost is the cost used for password hashes (≈ 250 ms on a
// 2-core machine: slow for guessing, fine for a login).
const DefaultBcryptCost = 12

// MinKeyLen is the minimum HS256 key length in bytes.
const MinKeyLen = 32

// Password policy bounds (bcrypt reads at most 72 bytes).
const (
	MinPasswordLen = 12
	MaxPasswordLen = 72
)

// CheckPasswordPolicy reports whether pw is acceptable.
func CheckPasswordPolicy(pw string) error {
	if len(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return fmt.Errorf("%w: length must be %d..%d bytes", ErrWeakPassword, MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

// HashPassword returns the bcrypt hash of pw at cost.
func HashPassword(pw string, cost int) ([]byte, error) {
	if err := CheckPasswordPolicy(pw); err != nil {
		return nil, err
	}
	return bcrypt.GenerateFromPassword([]byte(pw), cost)
}

// CheckPassword compares pw with a bcrypt hash.
func CheckPassword(hash []byte, pw string) error {
	if len(pw) > MaxPasswordLen {
		return ErrBadPassword
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(pw)); err != nil {
		return ErrBadPassword
	}
	return nil
}

// dummyHash lets a login for an unknown user cost as much as a real one.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("no-such-user-padding"), DefaultBcryptCost)
	return h
})

// BurnPasswordCheck spends the time of one password check (unknown users).
func BurnPasswordCheck(pw string) { _ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(pw)) }

// RandomString returns n random bytes, base64url encoded.
func RandomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewKey returns a fresh random signing key.
func NewKey() ([]byte, error) {
	k := make([]byte, MinKeyLen)
	_, err := rand.Read(k)
	return k, err
}

// Claims are the claims of a session JWT.
type Claims struct {
	Subject   string `json:"sub"`
	Role      string `json:"role"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	ExpiresAt int64  `json:"exp"`
	ID        string `json:"jti"`
}

// Signer issues and verifies HS256 JWTs.
type Signer struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// NewSigner returns a Signer; key must be at least MinKeyLen bytes.
func NewSigner(key []byte, ttl time.Duration, now func() time.Time) (*Signer, error) {
	if len(key) < MinKeyLen {
		return nil, ErrWeakKey
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{key: append([]byte(nil), key...), ttl: ttl, now: now}, nil
}

const jwtHeader = `{"alg":"HS256","typ":"JWT"}`

var b64 = base64.RawURLEncoding

// Sign issues a token for subject with role.
func (s *Signer) Sign(subject, role string) (string, Claims, error) {
	now := s.now()
	c := Claims{Subject: subject, Role: role, IssuedAt: now.Unix(), NotBefore: now.Unix(), ExpiresAt: now.Add(s.ttl).Unix(), ID: RandomString(12)}
	body, err := json.Marshal(c)
	if err != nil {
		return "", c, err
	}
	signing := b64.EncodeToString([]byte(jwtHeader)) + "." + b64.EncodeToString(body)
	return signing + "." + b64.EncodeToString(s.mac(signing)), c, nil
}

func (s *Signer) mac(msg string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// MaxTokenLen bounds the size of a token accepted for verification.
const MaxTokenLen = 4096

// Verify checks the signature, algorithm and time claims of tok.
func (s *Signer) Verify(tok string) (Claims, error) {
	var c Claims
	if len(tok) > MaxTokenLen {
		return c, ErrInvalidToken
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return c, ErrInvalidToken
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.mac(parts[0]+"."+parts[1])) {
		return c, ErrInvalidToken
	}
	hdr, err := b64.DecodeString(parts[0])
	if err != nil {
		return c, ErrInvalidToken
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hdr, &h) != nil || h.Alg != "HS256" {
		return c, ErrInvalidToken
	}
	body, err := b64.DecodeString(parts[1])
	if err != nil || json.Unmarshal(body, &c) != nil || c.Subject == "" {
		return Claims{}, ErrInvalidToken
	}
	now := s.now().Unix()
	if now >= c.ExpiresAt {
		return c, ErrExpired
	}
	if now < c.NotBefore {
		return c, ErrInvalidToken
	}
	return c, nil
}

// Personal access tokens look like "dfm_<id>_<secret>". Only SHA-256(secret)
// is stored; the secret is shown once at creation.
const patPrefix = "dfm_"

// NewPAT returns a new token's id, the full token string and the hash to store.
func NewPAT() (id, token string, hash []byte) {
	idb := make([]byte, 8)
	if _, err := rand.Read(idb); err != nil {
		panic(err)
	}
	id = hex.EncodeToString(idb)
	secret := RandomString(32)
	sum := sha256.Sum256([]byte(secret))
	return id, patPrefix + id + "_" + secret, sum[:]
}

// IsPAT reports whether tok has the personal-access-token shape.
func IsPAT(tok string) bool { return strings.HasPrefix(tok, patPrefix) }

// ParsePAT splits a token into its id and the hash of its secret.
func ParsePAT(tok string) (id string, hash []byte, err error) {
	if len(tok) > MaxTokenLen || !IsPAT(tok) {
		return "", nil, ErrInvalidToken
	}
	id, secret, ok := strings.Cut(tok[len(patPrefix):], "_")
	if !ok || len(id) != 16 || secret == "" {
		return "", nil, ErrInvalidToken
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", nil, ErrInvalidToken
	}
	sum := sha256.Sum256([]byte(secret))
	return id, sum[:], nil
}

// HashEqual compares two token hashes in constant time.
func HashEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
