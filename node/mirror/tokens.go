package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Token limits.
const (
	maxTokenResponse = 64 << 10
	maxTokenLength   = 16 << 10
	// minTokenLifetime is the lifetime assumed when a token endpoint says
	// nothing or less (the distribution token spec's minimum).
	minTokenLifetime = 60 * time.Second
	maxTokenLifetime = 24 * time.Hour
	maxCachedTokens  = 4096
)

type tokenKey struct {
	registry, scope, cred string
}

type tokenEntry struct {
	value   string
	expires time.Time
}

// tokenCache holds registry tokens until shortly before they expire. Keys
// carry the credential's HMAC, never the credential.
type tokenCache struct {
	mu  sync.Mutex
	m   map[tokenKey]tokenEntry
	sf  singleflight.Group
	now func() time.Time
}

func newTokenCache() *tokenCache {
	return &tokenCache{m: make(map[tokenKey]tokenEntry), now: time.Now}
}

func (c *tokenCache) get(k tokenKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !c.now().Before(e.expires) {
		return "", false
	}
	return e.value, true
}

func (c *tokenCache) put(k tokenKey, e tokenEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedTokens {
		now := c.now()
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m { // still full: forget arbitrary entries
			if len(c.m) < maxCachedTokens*3/4 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[k] = e
}

// token returns a token for scope from the cache, or from the challenge's
// realm (with the caller's Basic credentials, or anonymously).
func (u *upstream) token(ctx context.Context, r *registry, ch challenge, sc string, cred credential, refresh bool) (string, bool, error) {
	k := tokenKey{registry: r.cfg.Name, scope: sc, cred: cred.key}
	if !refresh {
		if v, ok := u.tokens.get(k); ok {
			return v, false, nil
		}
	}
	sfKey := k.registry + "\x00" + k.scope + "\x00" + k.cred
	v, err, _ := u.tokens.sf.Do(sfKey, func() (any, error) {
		// Shared by concurrent callers: one leaving must not fail the others.
		e, err := u.fetchToken(context.WithoutCancel(ctx), r, ch, sc, cred)
		if err != nil {
			return nil, err
		}
		u.tokens.put(k, e)
		return e.value, nil
	})
	if err != nil {
		return "", false, err
	}
	return v.(string), true, nil
}

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// fetchToken runs the distribution token flow: GET realm?service=&scope=.
func (u *upstream) fetchToken(ctx context.Context, r *registry, ch challenge, sc string, cred credential) (tokenEntry, error) {
	realm, err := url.Parse(ch.params["realm"])
	if err != nil || !r.realmAllowed(realm) {
		return tokenEntry{}, fmt.Errorf("%w: %s named token endpoint %q", ErrRealmRefused, r.cfg.Name, clip(ch.params["realm"]))
	}
	q := realm.Query()
	if s := ch.params["service"]; s != "" {
		q.Set("service", s)
	}
	q.Set("scope", sc)
	realm.RawQuery = q.Encode()
	realm.Fragment = ""

	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return tokenEntry{}, fmt.Errorf("%w: token request: %w", ErrUpstream, err)
	}
	req.Header.Set("User-Agent", userAgent)
	if cred.scheme == "basic" {
		req.Header.Set("Authorization", cred.header)
	}
	resp, err := r.noFollow.Do(req)
	if err != nil {
		u.metrics.upstream(r.cfg.Name, "token", "error")
		return tokenEntry{}, transportError(ctx, r, err)
	}
	defer drain(resp)
	u.metrics.upstream(r.cfg.Name, "token", fmt.Sprint(resp.StatusCode))
	if resp.StatusCode != http.StatusOK {
		err := statusError(resp, "token endpoint of "+r.cfg.Name)
		if resp.StatusCode == http.StatusUnauthorized {
			err.(*upstreamError).challenge = clientChallenge(ch, true, sc)
		}
		return tokenEntry{}, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return tokenEntry{}, transportError(ctx, r, err)
	}
	if len(body) > maxTokenResponse {
		return tokenEntry{}, fmt.Errorf("%w: token response of %s larger than %d bytes", ErrUpstream, r.cfg.Name, maxTokenResponse)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return tokenEntry{}, fmt.Errorf("%w: token response of %s is not JSON", ErrUpstream, r.cfg.Name)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" || len(tok) > maxTokenLength || !printable(tok) || strings.ContainsAny(tok, " \t") {
		return tokenEntry{}, fmt.Errorf("%w: token endpoint of %s returned an unusable token", ErrUpstream, r.cfg.Name)
	}
	secs := min(max(tr.ExpiresIn, 0), int64(maxTokenLifetime/time.Second))
	life := max(time.Duration(secs)*time.Second, minTokenLifetime)
	// Renew a little early: a token must not expire between cache and use.
	life -= min(life/10, 30*time.Second)
	return tokenEntry{value: tok, expires: u.tokens.now().Add(life)}, nil
}
