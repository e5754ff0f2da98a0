package source

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Request names what to fetch.
type Request struct {
	// URL is an absolute http or https URL. Userinfo in it is sent as Basic
	// authorization, to the URL's own host only.
	URL string
	// Header holds extra request headers, e.g. Authorization. Authorization
	// and Cookie are sent to the URL's own host and port only: a redirect
	// elsewhere drops them. Headers the client manages (Range,
	// conditionals, Accept-Encoding, Host, framing) are ignored.
	Header http.Header
}

// managedHeaders are set by the client only: a caller's copy would change
// what a response means (a conditional turning a GET into a 304, a Range
// on a whole-body request) or break the framing.
var managedHeaders = []string{
	"Host", "Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since",
	"If-Unmodified-Since", "Accept-Encoding", "Connection", "Content-Length",
	"Transfer-Encoding", "Te", "Trailer", "Upgrade", "Expect", "Keep-Alive",
}

// target is a validated request URL.
type target struct {
	u        *url.URL
	redacted string
	user     *url.Userinfo
}

func parseTarget(raw string) (target, error) {
	red := RedactURL(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("%w: unparsable URL %s", ErrInvalidRequest, red)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return target{}, fmt.Errorf("%w: not an absolute http(s) URL: %s", ErrInvalidRequest, red)
	}
	t := target{u: u, redacted: red, user: u.User}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	return t, nil
}

// newRequest builds one attempt's request.
func (c *Client) newRequest(ctx context.Context, method string, t target, r Request, extra http.Header) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, t.u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s", ErrInvalidRequest, method, t.redacted)
	}
	for k, vs := range r.Header {
		req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	for _, h := range managedHeaders {
		req.Header.Del(h)
	}
	for k, vs := range extra {
		req.Header[k] = vs
	}
	req.Header.Set("Accept-Encoding", "identity")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if t.user != nil && req.Header.Get("Authorization") == "" {
		pass, _ := t.user.Password()
		req.SetBasicAuth(t.user.Username(), pass)
	}
	return req, nil
}
