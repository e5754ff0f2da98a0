package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestJWT(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	key := []byte(strings.Repeat("k", 32))
	s, err := NewSigner(key, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Sign("alice", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Verify(tok); err != nil || c.Subject != "alice" || c.Role != "admin" {
		t.Fatalf("%+v %v", c, err)
	}
	other, _ := NewSigner([]byte(strings.Repeat("x", 32)), time.Hour, clock)
	parts := strings.Split(tok, ".")
	noneHdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	forgedBody := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"root","role":"root","exp":9999999999}`))
	cases := []struct {
		name string
		tok  string
		s    *Signer
		want error
	}{
		{"other key", tok, other, ErrInvalidToken},
		{"alg none", noneHdr + "." + parts[1] + ".", s, ErrInvalidToken},
		{"body swapped", parts[0] + "." + forgedBody + "." + parts[2], s, ErrInvalidToken},
		{"two parts", parts[0] + "." + parts[1], s, ErrInvalidToken},
		{"garbage", "a.b.c", s, ErrInvalidToken},
		{"empty", "", s, ErrInvalidToken},
		{"huge", strings.Repeat("a", MaxTokenLen+1), s, ErrInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.s.Verify(tc.tok); !errors.Is(err, tc.want) {
				t.Fatalf("got %v want %v", err, tc.want)
			}
		})
	}
	now = now.Add(2 * time.Hour)
	if _, err := s.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
}

func TestWeakKeyRefused(t *testing.T) {
	if _, err := NewSigner([]byte("short"), time.Hour, nil); !errors.Is(err, ErrWeakKey) {
		t.Fatal(err)
	}
}

func TestPasswords(t *testing.T) {
	h, err := HashPassword("correct horse battery", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(h, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(h, "wrong horse battery"); !errors.Is(err, ErrBadPassword) {
		t.Fatal(err)
	}
	if _, err := HashPassword("short", bcrypt.MinCost); !errors.Is(err, ErrWeakPassword) {
		t.Fatal(err)
	}
	if _, err := HashPassword(strings.Repeat("a", 73), bcrypt.MinCost); !errors.Is(err, ErrWeakPassword) {
		t.Fatal(err)
	}
}

func TestPAT(t *testing.T) {
	id, tok, hash := NewPAT()
	gid, ghash, err := ParsePAT(tok)
	if err != nil || gid != id || !HashEqual(ghash, hash) {
		t.Fatalf("%s %v", gid, err)
	}
	for _, bad := range []string{"dfm_", "dfm_zz_x", "dfm_0123456789abcdef", "xyz", "dfm_0123456789abcdeg_s"} {
		if _, _, err := ParsePAT(bad); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	_, _, h2 := NewPAT()
	if HashEqual(hash, h2) {
		t.Fatal("two tokens share a hash")
	}
}
