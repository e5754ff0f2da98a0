package source

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
	"net/url"
	"os"
	"time"

	"github.com/dragonfly-p2p/df/protocol/netguard"
)

// Client fetches content from origin servers. It is safe for concurrent
// use; create one per daemon and reuse it, so that connections are reused.
type Client struct {
	hc            *http.Client
	transport     *http.Transport
	log           *slog.Logger
	retry         retryPolicy
	userAgent     string
	redirectHosts []hostPattern
}

// Meta describes the origin's representation.
type Meta struct {
	// ContentLength is the full size in bytes, -1 when unknown.
	ContentLength int64
	ETag          string
	LastModified  string
	ContentType   string
	// AcceptRanges: the origin serves byte ranges.
	AcceptRanges bool
}

// New returns a Client configured by opts.
func New(opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	roots, err := cfg.rootPool()
	if err != nil {
		return nil, err
	}
	c := &Client{
		log:       cfg.log,
		retry:     retryPolicy{max: cfg.maxRetries, base: cfg.retryBase, cap: cfg.retryCap, jitter: fullJitter},
		userAgent: cfg.userAgent,
	}
	for _, h := range cfg.redirectHosts {
		p, err := parseHostPattern(h)
		if err != nil {
			return nil, err
		}
		c.redirectHosts = append(c.redirectHosts, p)
	}
	policy := netguard.Policy{Allowed: cfg.allowed}
	dialer := &net.Dialer{
		Timeout:        cfg.dialTimeout,
		KeepAlive:      30 * time.Second,
		ControlContext: policy.Control,
	}
	dial := dialer.DialContext
	if wrap := cfg.wrapConn; wrap != nil {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return wrap(conn), nil
		}
	}
	c.transport = &http.Transport{
		Proxy:                  nil, // see the package comment
		DialContext:            dial,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    cfg.tlsTimeout,
		ResponseHeaderTimeout:  cfg.headerTimeout,
		IdleConnTimeout:        DefaultIdleConnTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    16,
		MaxResponseHeaderBytes: 1 << 20,
		DisableCompression:     true, // ranges and lengths are about the stored bytes
		ForceAttemptHTTP2:      true,
	}
	c.hc = &http.Client{Transport: c.transport, CheckRedirect: c.checkRedirect}
	return c, nil
}

func (cfg *config) validate() error {
	switch {
	case cfg.dialTimeout < 0 || cfg.tlsTimeout < 0 || cfg.headerTimeout < 0:
		return fmt.Errorf("source: negative timeout")
	case cfg.maxRetries < 0:
		return fmt.Errorf("source: negative retry count %d", cfg.maxRetries)
	case cfg.retryBase <= 0 || cfg.retryCap <= 0 || cfg.retryBase > cfg.retryCap:
		return fmt.Errorf("source: retry backoff needs 0 < base (%v) ≤ cap (%v)", cfg.retryBase, cfg.retryCap)
	}
	for _, p := range cfg.allowed {
		if !p.IsValid() {
			return fmt.Errorf("source: invalid allowed network %v", p)
		}
	}
	return nil
}

// rootPool returns the trust anchors: nil (the system roots, loaded lazily
// by crypto/tls) unless options changed them.
func (cfg *config) rootPool() (*x509.CertPool, error) {
	if len(cfg.caFiles) == 0 {
		return cfg.roots, nil
	}
	var pool *x509.CertPool
	if cfg.roots != nil {
		pool = cfg.roots.Clone()
	} else {
		sys, err := x509.SystemCertPool()
		if err != nil {
			cfg.log.Warn("system certificate pool unavailable; trusting only the configured CA files", "err", err)
			sys = x509.NewCertPool()
		}
		pool = sys
	}
	for _, f := range cfg.caFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("source: CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("source: CA file %s holds no PEM certificate", f)
		}
	}
	return pool, nil
}

// CloseIdleConnections closes connections kept alive for reuse.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// do sends the request, retrying transient failures, and returns the first
// response that is not a retryable status. The response body is bounded by
// ctx. extra headers override the caller's.
func (c *Client) do(ctx context.Context, method string, r Request, extra http.Header) (*http.Response, target, error) {
	t, err := parseTarget(r.URL)
	if err != nil {
		return nil, t, err
	}
	var lastErr error
	attempts := 0
	for {
		attempts++
		req, err := c.newRequest(ctx, method, t, r, extra)
		if err != nil {
			return nil, t, err
		}
		resp, err := c.hc.Do(req)
		retryAfter := time.Duration(0)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, t, fmt.Errorf("%s %s: %w", method, t.redacted, ctx.Err())
			}
			err = unwrapURLError(err)
			if !retryableTransportError(err) {
				return nil, t, fmt.Errorf("%s %s: %w", method, t.redacted, err)
			}
			lastErr = fmt.Errorf("%s %s: %w", method, t.redacted, err)
		case retryableStatus(resp.StatusCode):
			retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			discard(resp)
			lastErr = newHTTPError(method, t.redacted, resp.StatusCode)
		default:
			c.log.Debug("origin response", "method", method, "url", t.redacted, "status", resp.StatusCode, "attempt", attempts)
			return resp, t, nil
		}
		if attempts > c.retry.max {
			break
		}
		d := c.retry.delay(attempts-1, retryAfter)
		c.log.Info("origin request failed; retrying", "method", method, "url", t.redacted,
			"attempt", attempts, "delay", d, "err", lastErr)
		if err := sleep(ctx, d); err != nil {
			return nil, t, fmt.Errorf("%s %s: %w", method, t.redacted, err)
		}
	}
	c.log.Warn("origin unavailable", "method", method, "url", t.redacted, "attempts", attempts, "err", lastErr)
	var herr *HTTPError
	if errors.As(lastErr, &herr) {
		return nil, t, fmt.Errorf("gave up after %d attempts: %w", attempts, lastErr)
	}
	return nil, t, fmt.Errorf("%w: gave up after %d attempts: %w", ErrUnavailable, attempts, lastErr)
}

// unwrapURLError drops *url.Error, whose message holds the unredacted URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// discard closes an unwanted body. A short body of known length is read
// first, so that the connection can be reused; anything else is cut off.
func discard(resp *http.Response) {
	if resp.ContentLength >= 0 && resp.ContentLength <= 4<<10 {
		_, _ = io.CopyN(io.Discard, resp.Body, resp.ContentLength)
	}
	_ = resp.Body.Close()
}

// statusError closes resp and returns its status as an *HTTPError.
func statusError(resp *http.Response, method string, t target) error {
	discard(resp)
	return newHTTPError(method, t.redacted, resp.StatusCode)
}
