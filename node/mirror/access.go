package mirror

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
)

// maxAccessEntries bounds the confirmation cache.
const maxAccessEntries = 1 << 16

// publicKey replaces the credential key of confirmations in public
// repositories: they hold for every caller.
const publicKey = "public"

// accessKey names one confirmation: the registry said the credential (by
// HMAC) may read digest in repo.
type accessKey struct {
	registry, repo string
	digest         protocol.Digest
	cred           string
}

func (k accessKey) String() string {
	return k.registry + "\x00" + k.repo + "\x00" + k.digest.Hex() + "\x00" + k.cred
}

// accessCache remembers upstream confirmations for a TTL.
type accessCache struct {
	mu  sync.Mutex
	m   map[accessKey]time.Time // expiry
	now func() time.Time
}

func newAccessCache() *accessCache {
	return &accessCache{m: make(map[accessKey]time.Time), now: time.Now}
}

func (c *accessCache) ok(k accessKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[k]
	return ok && c.now().Before(exp)
}

func (c *accessCache) add(ttl time.Duration, keys ...accessKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.m)+len(keys) > maxAccessEntries {
		for k, exp := range c.m {
			if !now.Before(exp) {
				delete(c.m, k)
			}
		}
		for k := range c.m { // still full: forget arbitrary entries
			if len(c.m)+len(keys) <= maxAccessEntries*3/4 {
				break
			}
			delete(c.m, k)
		}
	}
	for i, k := range keys {
		if i == maxAccessEntries/2 {
			break
		}
		c.m[k] = now.Add(ttl)
	}
}

// accessKeyFor is the cache key of cred reading d in reg's repo, and the
// TTL of a confirmation.
func (m *Mirror) accessKeyFor(reg *registry, repo string, d protocol.Digest, cred credential) (accessKey, time.Duration) {
	if reg.isPublic(repo) {
		return accessKey{reg.cfg.Name, repo, d, publicKey}, m.cfg.PublicAccessTTL
	}
	return accessKey{reg.cfg.Name, repo, d, cred.key}, m.cfg.AccessTTL
}

// confirm records that cred may read the digests in reg's repo.
func (m *Mirror) confirm(reg *registry, repo string, cred credential, ds ...protocol.Digest) {
	keys := make([]accessKey, 0, len(ds))
	var ttl time.Duration
	for _, d := range ds {
		var k accessKey
		k, ttl = m.accessKeyFor(reg, repo, d, cred)
		keys = append(keys, k)
	}
	if len(keys) > 0 {
		m.access.add(ttl, keys...)
	}
}

// authorize is the private-image policy: content goes from the cluster to
// this caller only once the registry confirmed that the caller's credential
// (or anonymous access, for a caller without one) can read this digest in
// this repository — a HEAD on the manifest or blob, or an earlier tag
// resolution or confirmed manifest that references it — within the TTL.
func (m *Mirror) authorize(ctx context.Context, q *request) error {
	key, ttl := m.accessKeyFor(q.reg, q.rt.name, q.rt.digest, q.cred)
	if m.access.ok(key) {
		m.metrics.access.WithLabelValues("cached").Inc()
		return nil
	}
	// One check per key at a time; the key includes the credential's HMAC,
	// so callers with other credentials never share a verdict.
	sfKey := key.String() + "\x00" + q.cred.key
	_, err, _ := m.checks.Do(sfKey, func() (any, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.UpstreamTimeout)
		defer cancel()
		resp, err := m.up.do(cctx, q.reg, call{
			method: http.MethodHead, path: "/v2/" + q.rt.name + "/" + q.rt.kind() + "/" + q.rt.digest.String(),
			accept: manifestAcceptIf(q.rt.endpoint), scope: scope(q.rt.name), cred: q.cred, op: "access_check",
		})
		if err != nil {
			return nil, err
		}
		defer drain(resp)
		switch {
		case resp.StatusCode == http.StatusOK,
			// A registry redirects a blob to its storage only after it
			// authorised the request.
			q.rt.endpoint == endpointBlob && isRedirect(resp.StatusCode):
			m.access.add(ttl, key)
			return nil, nil
		}
		return nil, statusError(resp, "HEAD "+q.rt.kind()+" at "+q.reg.cfg.Name)
	})
	switch {
	case err == nil:
		m.metrics.access.WithLabelValues("confirmed").Inc()
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrDenied), errors.Is(err, ErrNotFound):
		m.metrics.access.WithLabelValues("refused").Inc()
	default:
		m.metrics.access.WithLabelValues("error").Inc()
	}
	return err
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

func manifestAcceptIf(ep endpoint) string {
	if ep == endpointManifest {
		return manifestAccept
	}
	return ""
}
