package source

import (
	"net/url"
	"strings"
	"unicode"
)

// redacted replaces every query value (and every bare query key) in URLs
// passed through RedactURL.
const redacted = "REDACTED"

// RedactURL returns rawURL fit for logs and error messages: userinfo and
// fragment dropped, every query value replaced by "REDACTED" (signed URLs
// carry their credentials there), parameter names kept. A string that does
// not parse as a URL is cut before its query and stripped of userinfo.
// Control characters are always removed.
func RedactURL(rawURL string) string {
	rawURL = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		return redactUnparsed(rawURL)
	}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	u.ForceQuery = false
	u.RawQuery = redactQuery(u.RawQuery)
	if u.Opaque != "" {
		u.Opaque = dropUserinfo(u.Opaque)
	}
	out := u.String()
	if v, err := url.Parse(out); err == nil && v.User != nil {
		// A host-less path starting with "//" prints as an authority.
		out = strings.ReplaceAll(out, "@", "%40")
	}
	return out
}

// redactQuery keeps the parameter names of a raw query and replaces the
// values; a parameter without "=" is replaced as a whole.
func redactQuery(q string) string {
	if q == "" {
		return ""
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if p == "" {
			continue
		}
		if k, _, ok := strings.Cut(p, "="); ok {
			parts[i] = k + "=" + redacted
		} else {
			parts[i] = redacted
		}
	}
	return strings.Join(parts, "&")
}

func redactUnparsed(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	prefix := ""
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		prefix, s = scheme+"://", rest
	} else if rest, ok := strings.CutPrefix(s, "//"); ok {
		prefix, s = "//", rest
	}
	// Any "@" left could make the result parse with userinfo.
	return prefix + strings.ReplaceAll(dropUserinfo(s), "@", "%40")
}

// dropUserinfo removes "user:pass@" from the start of an authority-like
// string (up to the first "/").
func dropUserinfo(s string) string {
	auth, path := s, ""
	if i := strings.IndexByte(s, '/'); i >= 0 {
		auth, path = s[:i], s[i:]
	}
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		auth = auth[i+1:]
	}
	return auth + path
}
