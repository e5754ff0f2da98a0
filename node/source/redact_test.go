package source

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode"
)

func TestRedactURL(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"https://example.com/a/b", "https://example.com/a/b"},
		{"https://user:pass@example.com/a", "https://example.com/a"},
		{"https://s3.example.com/b/k?X-Amz-Signature=abc&X-Amz-Expires=60", "https://s3.example.com/b/k?X-Amz-Signature=REDACTED&X-Amz-Expires=REDACTED"},
		{"https://example.com/a?token", "https://example.com/a?REDACTED"},
		{"https://example.com/a?a=1&&b=", "https://example.com/a?a=REDACTED&&b=REDACTED"},
		{"https://example.com/a#frag-secret", "https://example.com/a"},
		{"https://example.com/a?", "https://example.com/a"},
		{"http://[::1]:8080/x?k=v", "http://[::1]:8080/x?k=REDACTED"},
		{"https://u:p@exa mple.com/a?sig=1", "https://exa mple.com/a"},
		{"https://u:p@example.com/a\n?sig=1", "https://example.com/a?sig=REDACTED"},
		{"//u:p@host/a?x", "//host/a?REDACTED"},
		{"https://u:p@example.com/%zz?sig=1", "https://example.com/%zz"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := RedactURL(tt.in); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// checkRedacted reports what a redacted URL still leaks.
func checkRedacted(s string) string {
	for _, r := range s {
		if unicode.IsControl(r) {
			return "control character"
		}
	}
	if strings.Contains(s, "#") {
		return "fragment"
	}
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	if u.User != nil {
		return "userinfo"
	}
	for p := range strings.SplitSeq(u.RawQuery, "&") {
		if p == "" || p == redacted {
			continue
		}
		if _, v, ok := strings.Cut(p, "="); !ok || v != redacted {
			return "query value " + p
		}
	}
	return ""
}

func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{
		"https://user:pass@example.com/a?sig=1&x=2#f",
		"http://[::1]:80/?a",
		"foo:bar@baz?x=1",
		"//host/p?q=1",
		"https://h/%zz?x=1",
		"mailto:user@example.com?subject=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := RedactURL(in)
		if leak := checkRedacted(out); leak != "" {
			t.Errorf("RedactURL(%q) = %q leaks a %s", in, out, leak)
		}
		if again := RedactURL(out); checkRedacted(again) != "" {
			t.Errorf("RedactURL(%q) = %q leaks", out, again)
		}
	})
}

// TestSecretsNotLogged runs failing requests with credentials everywhere and
// checks the debug log and the errors.
func TestSecretsNotLogged(t *testing.T) {
	secrets := []string{"SECRET-QUERY", "SECRET-PASSWORD", "SECRET-TOKEN", "SECRET-COOKIE"}
	o := startOrigin(t, redirector())
	var logs logBuffer
	c := newClient(t, WithLogger(logs.logger()))
	req := Request{
		URL:    "http://user:SECRET-PASSWORD@" + o.Listener.Addr().String() + "/r?to=%2Fmissing&sig=SECRET-QUERY",
		Header: http.Header{"Authorization": {"Bearer SECRET-TOKEN"}, "Cookie": {"c=SECRET-COOKIE"}},
	}
	var errs []error
	_, err := c.Stat(t.Context(), req) // redirect, then 404
	errs = append(errs, err)
	broken := startOrigin(t, status(http.StatusBadGateway)) // retried, then unavailable
	req.URL = strings.Replace(req.URL, o.Listener.Addr().String(), broken.Listener.Addr().String(), 1)
	_, _, err = c.Open(t.Context(), req)
	errs = append(errs, err)
	_, err = c.OpenRange(t.Context(), req, 0, 10, "")
	errs = append(errs, err)

	if !errors.Is(errs[0], ErrNotFound) || !errors.Is(errs[1], ErrUnavailable) {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if logs.count("retrying") == 0 || logs.count("following redirect") == 0 {
		t.Fatalf("expected retry and redirect log records, got:\n%s", logs.String())
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log contains %s", s)
		}
		for _, err := range errs {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q contains %s", err, s)
			}
		}
	}
}
