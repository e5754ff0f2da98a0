package mirror

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// maxCredentialLength bounds a caller's Authorization header.
const maxCredentialLength = 8192

// credential is a caller's Authorization header. It is kept for the
// duration of one request only; caches key on its HMAC (key), never on the
// value, and it formats as its scheme alone, so it cannot end up in a log.
type credential struct {
	header string // the raw header value ("" for anonymous)
	scheme string // "basic", "bearer" or "" (anonymous)
	key    string // HMAC of the value under a per-process key; "anonymous"
}

const anonymousKey = "anonymous"

// anonymous is the credential of a request without Authorization.
var anonymous = credential{key: anonymousKey}

// String implements fmt.Stringer without revealing the secret.
func (c credential) String() string {
	if c.scheme == "" {
		return "anonymous"
	}
	return c.scheme + " credential"
}

// GoString implements fmt.GoStringer (%#v) the same way.
func (c credential) GoString() string { return c.String() }

// LogValue implements slog.LogValuer the same way.
func (c credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

// credKeyer derives cache keys for credentials.
type credKeyer struct{ secret [32]byte }

func newCredKeyer() (*credKeyer, error) {
	k := &credKeyer{}
	if _, err := rand.Read(k.secret[:]); err != nil {
		return nil, fmt.Errorf("credential key: %w", err)
	}
	return k, nil
}

// parse reads the caller's Authorization header: absent, Basic or Bearer.
func (k *credKeyer) parse(h http.Header) (credential, error) {
	vs := h.Values("Authorization")
	switch len(vs) {
	case 0:
		return anonymous, nil
	case 1:
	default:
		return credential{}, fmt.Errorf("%w: several Authorization headers", ErrUnauthorized)
	}
	v := strings.TrimSpace(vs[0])
	if v == "" {
		return anonymous, nil
	}
	if len(v) > maxCredentialLength || !printable(v) {
		return credential{}, fmt.Errorf("%w: malformed Authorization header", ErrUnauthorized)
	}
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || strings.TrimSpace(rest) == "" {
		return credential{}, fmt.Errorf("%w: malformed Authorization header", ErrUnauthorized)
	}
	c := credential{header: v, scheme: strings.ToLower(scheme)}
	if c.scheme != "basic" && c.scheme != "bearer" {
		return credential{}, fmt.Errorf("%w: unsupported Authorization scheme", ErrUnauthorized)
	}
	mac := hmac.New(sha256.New, k.secret[:])
	mac.Write([]byte(v))
	c.key = hex.EncodeToString(mac.Sum(nil)[:16])
	return c, nil
}
