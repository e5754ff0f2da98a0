package source

import (
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// Defaults used by New.
const (
	DefaultDialTimeout           = 10 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultMaxRetries            = 3
	DefaultRetryBase             = 250 * time.Millisecond
	DefaultRetryCap              = 10 * time.Second
	DefaultUserAgent             = "dragonfly-p2p-df"
	// MaxRedirects is the longest redirect chain followed.
	MaxRedirects = 5
)

// Option configures a Client.
type Option func(*config)

type config struct {
	log           *slog.Logger
	allowed       []netip.Prefix
	roots         *x509.CertPool
	caFiles       []string
	dialTimeout   time.Duration
	tlsTimeout    time.Duration
	headerTimeout time.Duration
	maxRetries    int
	retryBase     time.Duration
	retryCap      time.Duration
	userAgent     string
	redirectHosts []string
	wrapConn      func(net.Conn) net.Conn
}

func defaultConfig() config {
	return config{
		log:           slog.New(slog.DiscardHandler),
		dialTimeout:   DefaultDialTimeout,
		tlsTimeout:    DefaultTLSHandshakeTimeout,
		headerTimeout: DefaultResponseHeaderTimeout,
		maxRetries:    DefaultMaxRetries,
		retryBase:     DefaultRetryBase,
		retryCap:      DefaultRetryCap,
		userAgent:     DefaultUserAgent,
	}
}

// WithLogger sets the logger (default: discard). Log records never carry
// request headers, and URLs in them are redacted.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithAllowedNetworks lets the client connect to addresses inside these
// prefixes even though they are blocked by default (loopback, private, …),
// e.g. an origin on the company network. Repeated calls add up.
func WithAllowedNetworks(prefixes []netip.Prefix) Option {
	return func(c *config) { c.allowed = append(c.allowed, prefixes...) }
}

// WithConnWrapper wraps every connection the client dials, after the
// network policy allowed it: testnet shapes a simulated host's origin
// traffic with it, so that bytes from the origin share the host's downlink
// with its peers' as they would on a real link.
func WithConnWrapper(wrap func(net.Conn) net.Conn) Option {
	return func(c *config) { c.wrapConn = wrap }
}

// WithRootCAs replaces the system roots with pool as the trust anchors for
// origin certificates (x509.CertPool cannot be merged into the system pool;
// to add to the system roots use WithCAFiles). Certificates loaded with
// WithCAFiles are added to a copy of pool.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *config) { c.roots = pool }
}

// WithCAFiles adds the PEM certificates in these files to the trust
// anchors (the system roots, or the pool of WithRootCAs). New fails when a
// file cannot be read or holds no certificate.
func WithCAFiles(paths ...string) Option {
	return func(c *config) { c.caFiles = append(c.caFiles, paths...) }
}

// WithTimeouts sets the dial, TLS handshake and response header timeouts; a
// zero value keeps the default. Reading a body is bounded by the caller's
// context only, since a large body legitimately takes long.
func WithTimeouts(dial, tlsHandshake, responseHeader time.Duration) Option {
	return func(c *config) {
		if dial != 0 {
			c.dialTimeout = dial
		}
		if tlsHandshake != 0 {
			c.tlsTimeout = tlsHandshake
		}
		if responseHeader != 0 {
			c.headerTimeout = responseHeader
		}
	}
}

// WithRetry sets how transient failures are retried: at most maxRetries
// times after the first attempt, waiting a random duration in
// [0, min(limit, base·2^attempt)) before each (full jitter), or longer when
// the origin's Retry-After asks for it, never longer than limit.
func WithRetry(maxRetries int, base, limit time.Duration) Option {
	return func(c *config) {
		c.maxRetries, c.retryBase, c.retryCap = maxRetries, base, limit
	}
}

// WithUserAgent sets the User-Agent sent when the request has none.
func WithUserAgent(ua string) Option {
	return func(c *config) {
		if ua != "" {
			c.userAgent = ua
		}
	}
}

// WithRedirectHosts names hosts besides the original one that redirects may
// lead to: "host" (any port), "host:port", or "*.example.com" (any
// subdomain, not example.com itself). Repeated calls add up.
func WithRedirectHosts(hosts ...string) Option {
	return func(c *config) { c.redirectHosts = append(c.redirectHosts, hosts...) }
}
