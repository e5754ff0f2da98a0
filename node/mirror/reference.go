package mirror

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/dragonfly-p2p/df/protocol"
)

// Grammar of the OCI distribution specification (v1.1), anchored. Go's
// regexp runs in linear time, so untrusted input cannot make it backtrack.
var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	// hostRE: DNS labels separated by dots, or a bracketed IPv6 address,
	// with an optional port (checked separately).
	labelRE = regexp.MustCompile(`^(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$`)
)

// Limits on request parts.
const (
	maxNameLength  = 255
	maxPathLength  = 512
	maxQueryLength = 1024
	maxHostLength  = 255
)

// validName reports whether s is a repository name.
func validName(s string) bool {
	return len(s) > 0 && len(s) <= maxNameLength && nameRE.MatchString(s)
}

// validTag reports whether s is a tag.
func validTag(s string) bool { return tagRE.MatchString(s) }

// validHost reports whether s is a lowercase host[:port] (DNS name, IPv4, or
// bracketed IPv6) as registry names and ns values are written.
func validHost(s string) bool {
	if s == "" || len(s) > maxHostLength || s != strings.ToLower(s) {
		return false
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host, port = s[1:end], s[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return false
		}
		port = strings.TrimPrefix(port, ":")
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return false
		}
		host = "" // checked
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		if port == "" {
			return false
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' || port[0] == '+' {
			return false
		}
	}
	if host == "" {
		return strings.HasPrefix(s, "[")
	}
	for _, l := range strings.Split(host, ".") {
		if len(l) > 63 || !labelRE.MatchString(l) {
			return false
		}
	}
	return true
}

// endpoint is what a request addresses.
type endpoint int

const (
	endpointBase endpoint = iota + 1
	endpointManifest
	endpointBlob
)

func (e endpoint) String() string {
	switch e {
	case endpointBase:
		return "base"
	case endpointManifest:
		return "manifest"
	case endpointBlob:
		return "blob"
	}
	return "other"
}

// route is a parsed, validated request path.
type route struct {
	endpoint endpoint
	name     string // repository
	tag      string // manifests by tag
	digest   protocol.Digest
	byDigest bool
}

// ref returns the reference as written in the path.
func (r route) ref() string {
	if r.byDigest {
		return r.digest.String()
	}
	return r.tag
}

// kind is the path component naming the endpoint.
func (r route) kind() string {
	if r.endpoint == endpointBlob {
		return "blobs"
	}
	return "manifests"
}

// parseRoute validates the request path. escaped is the path as sent
// (URL.EscapedPath), decoded the unescaped one: any escape at all is
// refused, since no valid name, tag or digest needs one, and "%2e%2e" or an
// escaped "/" would otherwise decode into a different path.
func parseRoute(escaped, decoded string) (route, error) {
	if len(escaped) > maxPathLength {
		return route{}, fmt.Errorf("%w: path longer than %d bytes", ErrNameInvalid, maxPathLength)
	}
	if strings.ContainsAny(escaped, "%\\") || escaped != decoded {
		return route{}, fmt.Errorf("%w: escaped characters in the path", ErrNameInvalid)
	}
	if decoded == "/v2" || decoded == "/v2/" {
		return route{endpoint: endpointBase}, nil
	}
	rest, ok := strings.CutPrefix(decoded, "/v2/")
	if !ok {
		return route{}, ErrNotRoute
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return route{}, ErrNotRoute
	}
	ref, head := rest[i+1:], rest[:i]
	j := strings.LastIndexByte(head, '/')
	if j < 0 {
		return route{}, ErrNotRoute
	}
	kind, name := head[j+1:], head[:j]
	var r route
	switch kind {
	case "manifests":
		r.endpoint = endpointManifest
	case "blobs":
		r.endpoint = endpointBlob
	default:
		return route{}, ErrNotRoute // tags/list, referrers, uploads: not mirrored
	}
	if !validName(name) {
		return route{endpoint: r.endpoint}, fmt.Errorf("%w: repository name %q", ErrNameInvalid, clip(name))
	}
	r.name = name
	if strings.Contains(ref, ":") {
		d, err := protocol.ParseDigest(ref)
		if err != nil {
			return route{endpoint: r.endpoint}, fmt.Errorf("%w: %w", ErrDigestInvalid, err)
		}
		r.digest, r.byDigest = d, true
		return r, nil
	}
	if r.endpoint == endpointBlob {
		return route{endpoint: r.endpoint}, fmt.Errorf("%w: blobs are addressed by sha256 digest, not %q", ErrDigestInvalid, clip(ref))
	}
	if !validTag(ref) {
		return route{endpoint: r.endpoint}, fmt.Errorf("%w: reference %q is neither a tag nor a sha256 digest", ErrManifestUnknown, clip(ref))
	}
	r.tag = ref
	return r, nil
}

// parseNS returns the ns query parameter ("" when absent), refusing a
// malformed query, repeated ns or a value that is not a host[:port].
func parseNS(rawQuery string) (string, error) {
	if rawQuery == "" {
		return "", nil
	}
	if len(rawQuery) > maxQueryLength {
		return "", fmt.Errorf("%w: query longer than %d bytes", ErrNameInvalid, maxQueryLength)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("%w: malformed query", ErrNameInvalid)
	}
	vs := q["ns"]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", fmt.Errorf("%w: ns given %d times", ErrNameInvalid, len(vs))
	}
	ns := strings.ToLower(vs[0])
	if !validHost(ns) {
		return "", fmt.Errorf("%w: ns %q is not a registry host[:port]", ErrNameInvalid, clip(vs[0]))
	}
	return ns, nil
}

// clip keeps untrusted input short in messages.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// hostPattern is one RedirectHosts/AuthHosts entry: "host", "host:port" or
// "*.example.com" (strict subdomains), the syntax of source.WithRedirectHosts.
type hostPattern struct {
	name     string
	port     string
	wildcard bool
}

func parseHostPattern(s string) (hostPattern, error) {
	var p hostPattern
	t := strings.ToLower(strings.TrimSpace(s))
	if rest, ok := strings.CutPrefix(t, "*."); ok {
		p.wildcard, t = true, rest
	}
	if !validHost(t) {
		return hostPattern{}, fmt.Errorf("host pattern %q: want host, host:port or *.domain", s)
	}
	if h, port, err := net.SplitHostPort(t); err == nil {
		t, p.port = h, port
	}
	p.name = strings.Trim(t, "[]")
	return p, nil
}

// match reports whether u's host (and port, when the pattern has one)
// matches.
func (p hostPattern) match(u *url.URL) bool {
	if p.port != "" && p.port != effectivePort(u) {
		return false
	}
	h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if p.wildcard {
		return strings.HasSuffix(h, "."+p.name)
	}
	return h == p.name
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}
