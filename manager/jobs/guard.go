package jobs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/dragonfly-p2p/df/protocol/netguard"
)

// ErrForbiddenAddress is returned when a preheat URL (or a redirect, or a
// name's resolution) points at an address the manager must not reach.
var ErrForbiddenAddress = errors.New("jobs: address not allowed for preheat")

// Guard decides which addresses preheat may reach: the same policy as the
// nodes' back-to-source client (protocol/netguard), with the operator's
// allow list.
type Guard struct {
	p netguard.Policy
}

// NewGuard returns a guard allowing the given prefixes despite the rules.
func NewGuard(allow []netip.Prefix) *Guard { return &Guard{p: netguard.Policy{Allowed: allow}} }

// Check refuses a forbidden address.
func (g *Guard) Check(a netip.Addr) error {
	if err := g.p.Check(a); err != nil {
		return fmt.Errorf("%w: %w", ErrForbiddenAddress, err)
	}
	return nil
}

// control runs on every dial, after name resolution: redirects and DNS
// rebinding are covered because nothing connects without passing it.
func (g *Guard) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
	}
	return g.Check(ap.Addr())
}

// Transport returns an HTTP transport whose every connection passes the guard.
func (g *Guard) Transport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, ControlContext: g.control}
	return &http.Transport{
		Proxy: nil, DialContext: d.DialContext, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second, MaxIdleConns: 32, IdleConnTimeout: time.Minute,
	}
}

// Client returns an HTTP client over Transport that follows at most 5
// redirects, to http(s) only (each redirect's address is guarded too).
func (g *Guard) Client() *http.Client {
	return &http.Client{Transport: g.Transport(), Timeout: 5 * time.Minute, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("jobs: too many redirects")
		}
		return CheckURLSyntax(r.URL)
	}}
}

// CheckURLSyntax accepts absolute http(s) URLs without user info.
func CheckURLSyntax(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q", ErrInvalidArgs, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in URL", ErrInvalidArgs)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%w: no host", ErrInvalidArgs)
	}
	return nil
}

// CheckURL validates raw and resolves its host: every address must pass the
// guard. This is the early check at submit time; the dial-time check stays.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	if len(raw) > 4096 {
		return fmt.Errorf("%w: URL longer than 4096 bytes", ErrInvalidArgs)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArgs, err)
	}
	if err := CheckURLSyntax(u); err != nil {
		return err
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return g.Check(a)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("%w: resolve %s: %v", ErrInvalidArgs, host, err)
	}
	for _, a := range addrs {
		if err := g.Check(a); err != nil {
			return err
		}
	}
	return nil
}
