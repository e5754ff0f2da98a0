package source

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// sensitiveHeaders are dropped once a redirect chain leaves the original
// host and port.
var sensitiveHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Cookie2"}

// hostPattern is one WithRedirectHosts entry.
type hostPattern struct {
	name     string // normalised host name; for a wildcard, the parent domain
	port     string // "" matches any port
	wildcard bool   // matches strict subdomains of name
}

func parseHostPattern(s string) (hostPattern, error) {
	s = strings.TrimSpace(s)
	var p hostPattern
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		p.wildcard, s = true, rest
	}
	if h, port, err := net.SplitHostPort(s); err == nil {
		s, p.port = h, port
	}
	p.name = normalizeHost(s)
	if p.name == "" || strings.ContainsAny(p.name, "/@?#*[] \t") {
		return hostPattern{}, fmt.Errorf("%w: redirect host %q", ErrInvalidRequest, s)
	}
	return p, nil
}

func (p hostPattern) match(u *url.URL) bool {
	if p.port != "" && p.port != effectivePort(u) {
		return false
	}
	h := normalizeHost(u.Hostname())
	if p.wildcard {
		return strings.HasSuffix(h, "."+p.name)
	}
	return h == p.name
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
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

// sameHost: same host name, any port (may the chain go there?).
func sameHost(a, b *url.URL) bool {
	return normalizeHost(a.Hostname()) == normalizeHost(b.Hostname())
}

// sameOrigin: same host name and port (may credentials go there?).
func sameOrigin(a, b *url.URL) bool {
	return sameHost(a, b) && effectivePort(a) == effectivePort(b)
}

// checkRedirect is the http.Client redirect policy; see the package comment.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) == 0 {
		return errors.New("source: redirect without a previous request")
	}
	orig, dst := via[0].URL, req.URL
	red := RedactURL(dst.String())
	if len(via) > MaxRedirects {
		return fmt.Errorf("%w: more than %d", ErrTooManyRedirects, MaxRedirects)
	}
	for _, v := range via {
		if v.URL.String() == dst.String() {
			return fmt.Errorf("%w: loop back to %s", ErrTooManyRedirects, red)
		}
	}
	if dst.Scheme != "http" && dst.Scheme != "https" {
		return fmt.Errorf("%w: to scheme %q", ErrRedirectRefused, dst.Scheme)
	}
	if dst.Scheme == "http" {
		for _, v := range via {
			if v.URL.Scheme == "https" {
				return fmt.Errorf("%w: downgrade from https to %s", ErrRedirectRefused, red)
			}
		}
	}
	if !sameHost(orig, dst) && !c.redirectAllowed(dst) {
		return fmt.Errorf("%w: to %s, a host not allowed", ErrRedirectRefused, red)
	}
	dst.User = nil // credentials chosen by the origin are not sent either
	for _, v := range append(via[1:len(via):len(via)], req) {
		if !sameOrigin(orig, v.URL) {
			for _, h := range sensitiveHeaders {
				req.Header.Del(h)
			}
			break
		}
	}
	c.log.Debug("following redirect", "to", red, "hop", len(via))
	return nil
}

func (c *Client) redirectAllowed(u *url.URL) bool {
	for _, p := range c.redirectHosts {
		if p.match(u) {
			return true
		}
	}
	return false
}
