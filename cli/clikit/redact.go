package clikit

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// Redacted replaces the value of every attribute [RedactSecrets] masks.
const Redacted = "[redacted]"

// secretWords are the fragments of a key that make it secret, compared
// with the key folded to lower case and stripped of '-', '_', '.' and ' '
// (so "X-Api-Key", "api_key" and "apiKey" all hold "apikey").
var secretWords = []string{
	"authorization", "password", "passwd", "passphrase", "secret", "token",
	"cookie", "credential", "apikey", "privatekey", "bearer",
}

// notSecretSuffixes name where a secret is kept, not the secret:
// "cluster-secret-file" is a path worth logging.
var notSecretSuffixes = []string{"file", "path"}

// isSecretKey reports whether an attribute, header or query parameter
// named key holds a secret.
func isSecretKey(key string) bool {
	k := strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', '.', ' ':
			return -1
		}
		return r
	}, strings.ToLower(key))
	for _, s := range notSecretSuffixes {
		if strings.HasSuffix(k, s) {
			return false
		}
	}
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// RedactSecrets is a slog.HandlerOptions.ReplaceAttr function (NewLogger
// uses it) that masks secrets:
//
//   - an attribute whose key looks secret (authorization, password,
//     token, secret, cookie, credential, api key, private key, …, but not
//     "…file" or "…path"), or that sits in a group whose name does, has
//     its value replaced by [Redacted];
//   - an http.Header value has its secret-looking headers masked;
//   - a url.URL value is logged as a string with its password and its
//     secret-looking query parameters masked.
//
// Keys are only a heuristic: never log a secret under an innocent name or
// inside a message.
func RedactSecrets(groups []string, a slog.Attr) slog.Attr {
	if isSecretKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	for _, g := range groups {
		if isSecretKey(g) {
			return slog.String(a.Key, Redacted)
		}
	}
	if a.Value.Kind() != slog.KindAny {
		return a
	}
	switch v := a.Value.Any().(type) {
	case http.Header:
		return slog.Any(a.Key, redactHeader(v))
	case *url.URL:
		if v != nil {
			return slog.String(a.Key, redactURL(v))
		}
	case url.URL:
		return slog.String(a.Key, redactURL(&v))
	}
	return a
}

func redactHeader(h http.Header) http.Header {
	out := h.Clone()
	for k := range out {
		if isSecretKey(k) {
			out[k] = []string{Redacted}
		}
	}
	return out
}

func redactURL(u *url.URL) string {
	c := *u
	if q := c.Query(); len(q) > 0 {
		masked := false
		for k := range q {
			if isSecretKey(k) {
				q[k] = []string{"redacted"}
				masked = true
			}
		}
		if masked {
			c.RawQuery = q.Encode()
		}
	}
	return c.Redacted()
}
