package mirror

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/node/source"
)

// WrapOrigin returns origin (the node's back-to-source client) with
// registry token authentication for the registries in cfg: a request for a
// configured registry's /v2/<name>/(manifests|blobs)/<ref> URL that carries
// no Authorization gets an anonymous token (Bearer challenge → token
// endpoint → scoped token, cached until it expires), and a request refused
// with 401 is retried once with a fresh anonymous token (an expired token,
// or a caller token that expired mid-download). This is what lets seed
// peers — which a scheduler asks to fetch a URL without any header — and
// long downloads pull public images from registries that want a token even
// for anonymous pulls (Docker Hub, ghcr.io). Other URLs pass through.
func WrapOrigin(origin download.Origin, cfg Config, opts ...Option) (download.Origin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	up, err := newUpstream(cfg.withDefaults(), o.log, newMetrics())
	if err != nil {
		return nil, err
	}
	return &authOrigin{next: origin, up: up}, nil
}

type authOrigin struct {
	next download.Origin
	up   *upstream
}

var _ download.Origin = (*authOrigin)(nil)

// prepare returns req with an anonymous registry token when it is a
// registry API request without Authorization (or refresh is set), and
// whether a token was added.
func (o *authOrigin) prepare(ctx context.Context, req source.Request, refresh bool) (source.Request, bool) {
	u, err := url.Parse(req.URL)
	if err != nil {
		return req, false
	}
	reg := o.up.byURL(u)
	if reg == nil {
		return req, false
	}
	rt, err := parseRoute(u.EscapedPath(), u.Path)
	if err != nil || rt.endpoint == endpointBase {
		return req, false
	}
	if req.Header.Get("Authorization") != "" && !refresh {
		return req, false
	}
	o.up.ensureChallenge(ctx, reg)
	authz, _, err := o.up.authorization(ctx, reg, scope(rt.name), anonymous, refresh)
	if err != nil || authz == "" {
		return req, false
	}
	h := req.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Authorization", authz)
	if rt.endpoint == endpointManifest && h.Get("Accept") == "" {
		h.Set("Accept", manifestAccept)
	}
	return source.Request{URL: req.URL, Header: h}, true
}

// with runs f with req prepared, and once more with a fresh anonymous
// token when the registry answered 401.
func with[T any](ctx context.Context, o *authOrigin, req source.Request, f func(source.Request) (T, error)) (T, error) {
	r, _ := o.prepare(ctx, req, false)
	v, err := f(r)
	if errors.Is(err, source.ErrUnauthorized) {
		if r2, ok := o.prepare(ctx, req, true); ok {
			return f(r2)
		}
	}
	return v, err
}

// Stat implements download.Origin.
func (o *authOrigin) Stat(ctx context.Context, req source.Request) (source.Meta, error) {
	return with(ctx, o, req, func(r source.Request) (source.Meta, error) { return o.next.Stat(ctx, r) })
}

// OpenRange implements download.Origin.
func (o *authOrigin) OpenRange(ctx context.Context, req source.Request, off, n int64, ifRange string) (io.ReadCloser, error) {
	return with(ctx, o, req, func(r source.Request) (io.ReadCloser, error) {
		return o.next.OpenRange(ctx, r, off, n, ifRange)
	})
}

type openResult struct {
	rc   io.ReadCloser
	meta source.Meta
}

// Open implements download.Origin.
func (o *authOrigin) Open(ctx context.Context, req source.Request) (io.ReadCloser, source.Meta, error) {
	res, err := with(ctx, o, req, func(r source.Request) (openResult, error) {
		rc, m, err := o.next.Open(ctx, r)
		return openResult{rc, m}, err
	})
	return res.rc, res.meta, err
}

// Revalidate implements download.Origin.
func (o *authOrigin) Revalidate(ctx context.Context, req source.Request, etag, lastModified string) (bool, source.Meta, error) {
	type rv struct {
		same bool
		meta source.Meta
	}
	res, err := with(ctx, o, req, func(r source.Request) (rv, error) {
		same, m, err := o.next.Revalidate(ctx, r, etag, lastModified)
		return rv{same, m}, err
	})
	return res.same, res.meta, err
}
