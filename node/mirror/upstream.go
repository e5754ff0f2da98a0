package mirror

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Transport defaults of the mirror's own registry client.
const (
	upstreamDialTimeout = 10 * time.Second
	upstreamTLSTimeout  = 10 * time.Second
	maxRedirects        = 5
	// pingInterval: how often a registry whose challenge is unknown is
	// pinged (GET /v2/) to learn it.
	pingInterval = 10 * time.Minute
	userAgent    = "dfnode-mirror"
)

// registry is one configured upstream registry at run time.
type registry struct {
	cfg      Registry
	base     *url.URL // scheme://host
	client   *http.Client
	noFollow *http.Client // access checks and token requests: a redirect is an answer
	public   []repoPattern
	auth     []hostPattern
	redirect []hostPattern

	mu        sync.Mutex
	challenge *challenge // the last Bearer/Basic challenge seen
	pinged    time.Time
}

// scope is the token scope for pulling repo.
func scope(repo string) string { return "repository:" + repo + ":pull" }

// url returns the API URL of /v2/<repo>/<kind>/<ref>.
func (r *registry) url(repo, kind, ref string) string {
	return r.base.String() + "/v2/" + repo + "/" + kind + "/" + ref
}

func (r *registry) isPublic(repo string) bool {
	for _, p := range r.public {
		if p.match(repo) {
			return true
		}
	}
	return false
}

func (r *registry) getChallenge() *challenge {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.challenge
}

func (r *registry) setChallenge(c challenge) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.challenge = &c
}

// newRegistry builds the runtime form of a validated Registry.
func newRegistry(cfg Registry, timeout time.Duration) (*registry, error) {
	r := &registry{cfg: cfg, base: &url.URL{Scheme: cfg.Scheme, Host: cfg.Host}}
	for _, p := range cfg.PublicRepositories {
		rp, err := parseRepoPattern(p)
		if err != nil {
			return nil, err
		}
		r.public = append(r.public, rp)
	}
	for _, h := range cfg.AuthHosts {
		hp, err := parseHostPattern(h)
		if err != nil {
			return nil, err
		}
		r.auth = append(r.auth, hp)
	}
	for _, h := range cfg.RedirectHosts {
		hp, err := parseHostPattern(h)
		if err != nil {
			return nil, err
		}
		r.redirect = append(r.redirect, hp)
	}
	tr, err := newTransport(cfg, timeout)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", cfg.Name, err)
	}
	r.client = &http.Client{Transport: tr, CheckRedirect: r.checkRedirect}
	r.noFollow = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return r, nil
}

// checkRedirect follows redirects within the registry host or to its
// RedirectHosts, never from https to http, and drops Authorization as soon
// as the chain leaves the registry's host and port.
func (r *registry) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrUpstream, maxRedirects)
	}
	prev := via[len(via)-1].URL
	if prev.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: redirect from https to %s refused", ErrUpstream, req.URL.Scheme)
	}
	same := strings.EqualFold(req.URL.Hostname(), r.base.Hostname()) && effectivePort(req.URL) == effectivePort(r.base)
	if !same {
		req.Header.Del("Authorization")
		req.Header.Del("Cookie")
		allowed := false
		for _, p := range r.redirect {
			if p.match(req.URL) {
				allowed = true
				break
			}
		}
		if !allowed {
			return fmt.Errorf("%w: redirect to host %q is not allowed for %s", ErrUpstream, clip(req.URL.Host), r.cfg.Name)
		}
	}
	return nil
}

// realmAllowed: a token endpoint must be the registry host or an auth host,
// over https (http only for a plain-HTTP registry).
func (r *registry) realmAllowed(u *url.URL) bool {
	if u.Scheme != "https" && !(u.Scheme == "http" && r.cfg.Scheme == "http") {
		return false
	}
	if u.User != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Hostname(), r.base.Hostname()) {
		return true
	}
	for _, p := range r.auth {
		if p.match(u) {
			return true
		}
	}
	return false
}

// newTransport returns the registry's transport: no proxy, verified TLS with
// the system roots plus the registry's CA files, bounded dial, handshake and
// response-header times, and a dialer that refuses unspecified, multicast
// and link-local (cloud metadata) addresses.
func newTransport(cfg Registry, headerTimeout time.Duration) (*http.Transport, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	for _, f := range cfg.CAFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate", f)
		}
	}
	d := &net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: 30 * time.Second, Control: dialGuard}
	return &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, out of reach of dialGuard
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   upstreamTLSTimeout,
		ResponseHeaderTimeout: headerTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     true,
	}, nil
}

// errBlockedAddress: the dialer refused the resolved address.
var errBlockedAddress = errors.New("destination address blocked")

// dialGuard refuses addresses no registry lives at. Registries themselves
// are configured by the operator (and may be on a private network); blob
// downloads go through the back-to-source client and its stricter guard.
func dialGuard(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", errBlockedAddress, address)
	}
	a := ap.Addr().Unmap()
	if a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("%w: %s", errBlockedAddress, a)
	}
	return nil
}

// upstream is the mirror's client for registry APIs and token endpoints.
type upstream struct {
	regs    map[string]*registry // by name
	hosts   map[string]*registry // by API host (ns may name it too)
	tokens  *tokenCache
	keys    *credKeyer
	timeout time.Duration
	log     *slog.Logger
	metrics *metrics
}

func newUpstream(cfg Config, log *slog.Logger, m *metrics) (*upstream, error) {
	keys, err := newCredKeyer()
	if err != nil {
		return nil, err
	}
	u := &upstream{
		regs: make(map[string]*registry), hosts: make(map[string]*registry),
		tokens: newTokenCache(), keys: keys, timeout: cfg.UpstreamTimeout, log: log, metrics: m,
	}
	for _, rc := range cfg.Registries {
		r, err := newRegistry(rc, cfg.UpstreamTimeout)
		if err != nil {
			return nil, err
		}
		u.regs[rc.Name] = r
	}
	for _, r := range u.regs {
		if _, clash := u.regs[r.cfg.Host]; !clash {
			u.hosts[r.cfg.Host] = r
		}
	}
	return u, nil
}

// lookup finds a registry by name, or by API host.
func (u *upstream) lookup(name string) *registry {
	if r, ok := u.regs[name]; ok {
		return r
	}
	return u.hosts[name]
}

// byURL finds the registry whose API serves rawURL's scheme and host.
func (u *upstream) byURL(parsed *url.URL) *registry {
	for _, r := range u.regs {
		if strings.EqualFold(parsed.Scheme, r.base.Scheme) &&
			strings.EqualFold(parsed.Hostname(), r.base.Hostname()) &&
			effectivePort(parsed) == effectivePort(r.base) {
			return r
		}
	}
	return nil
}

// call is one request to a registry's API.
type call struct {
	method string
	path   string // "/v2/..."
	accept string
	scope  string
	cred   credential
	follow bool   // follow allowed redirects (else a 3xx is returned)
	op     string // metric label
}

// do sends c, answering one authentication challenge: it sends the cached
// authorization for the registry's known challenge (nothing on first
// contact: Basic credentials go only to a registry that asked for them),
// and on a 401 fetches a fresh token (Bearer) or adds the caller's Basic
// credentials, then retries once. The caller closes the body.
func (u *upstream) do(ctx context.Context, r *registry, c call) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		authz, fresh, err := u.authorization(ctx, r, c.scope, c.cred, attempt > 0)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, c.method, r.base.String()+c.path, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUpstream, err)
		}
		req.Header.Set("User-Agent", userAgent)
		if c.accept != "" {
			req.Header.Set("Accept", c.accept)
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		client := r.noFollow
		if c.follow {
			client = r.client
		}
		resp, err := client.Do(req)
		if err != nil {
			u.metrics.upstream(r.cfg.Name, c.op, "error")
			return nil, transportError(ctx, r, err)
		}
		u.metrics.upstream(r.cfg.Name, c.op, strconv.Itoa(resp.StatusCode))
		if resp.StatusCode != http.StatusUnauthorized {
			return resp, nil
		}
		ch, ok := pick(parseChallenges(resp.Header.Values("WWW-Authenticate")))
		drain(resp)
		if ok {
			r.setChallenge(ch)
		}
		retry := ok && attempt == 0 && c.cred.scheme != "bearer" &&
			((ch.scheme == "bearer" && !fresh) || (ch.scheme == "basic" && c.cred.scheme == "basic" && authz == ""))
		if !retry {
			return nil, &upstreamError{kind: ErrUnauthorized, status: http.StatusUnauthorized,
				challenge: clientChallenge(ch, ok, c.scope), msg: fmt.Sprintf("%s %s", c.method, r.cfg.Name)}
		}
	}
}

// clientChallenge is the challenge relayed to a client on 401: the
// registry's own, with the scope of the request.
func clientChallenge(ch challenge, ok bool, sc string) string {
	if !ok {
		return ""
	}
	if ch.scheme == "bearer" && sc != "" {
		p := make(map[string]string, len(ch.params)+1)
		for k, v := range ch.params {
			p[k] = v
		}
		p["scope"] = sc
		ch.params = p
	}
	return ch.String()
}

// authorization returns the Authorization value to send to r for scope,
// and whether it was fetched just now (a token not taken from the cache).
func (u *upstream) authorization(ctx context.Context, r *registry, sc string, cred credential, refresh bool) (string, bool, error) {
	if cred.scheme == "bearer" {
		return cred.header, false, nil // the caller's own registry token
	}
	ch := r.getChallenge()
	if ch == nil {
		return "", false, nil
	}
	switch ch.scheme {
	case "basic":
		if cred.scheme == "basic" {
			return cred.header, false, nil
		}
		return "", false, nil
	case "bearer":
		tok, fresh, err := u.token(ctx, r, *ch, sc, cred, refresh)
		if err != nil {
			return "", false, err
		}
		return "Bearer " + tok, fresh, nil
	}
	return "", false, nil
}

// ensureChallenge pings the registry (GET /v2/) when its challenge is not
// known yet, at most once per pingInterval.
func (u *upstream) ensureChallenge(ctx context.Context, r *registry) {
	r.mu.Lock()
	if r.challenge != nil || time.Since(r.pinged) < pingInterval {
		r.mu.Unlock()
		return
	}
	r.pinged = time.Now()
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	resp, err := u.do(ctx, r, call{method: http.MethodGet, path: "/v2/", cred: anonymous, op: "ping"})
	if err == nil {
		drain(resp)
	}
}

// transportError classifies a failed round trip.
func transportError(ctx context.Context, r *registry, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, ErrUpstream):
		return err // refused redirect
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: %s: %w", ErrUpstreamTimeout, r.cfg.Name, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUpstream, r.cfg.Name, err)
}

// statusError maps a registry's non-success status.
func statusError(resp *http.Response, what string) error {
	e := &upstreamError{status: resp.StatusCode, msg: what}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		e.kind = ErrNotFound
	case resp.StatusCode == http.StatusForbidden:
		e.kind = ErrDenied
	case resp.StatusCode == http.StatusUnauthorized:
		e.kind = ErrUnauthorized
	case resp.StatusCode == http.StatusTooManyRequests:
		e.kind = ErrTooManyRequests
		e.retryAfter = retryAfter(resp.Header.Get("Retry-After"))
	case resp.StatusCode == http.StatusGatewayTimeout:
		e.kind = ErrUpstreamTimeout
	default:
		e.kind = ErrUpstream
	}
	return e
}

// retryAfter keeps a delta-seconds Retry-After up to an hour.
func retryAfter(v string) string {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return ""
	}
	return strconv.Itoa(min(n, 3600))
}

// drain discards a little of the body (so the connection can be reused)
// and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}
