package source

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// redirector serves /r?to=URL (redirect), /loop (to itself), /chain/N (N
// more redirects) and /final (the content).
func redirector() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/r", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("/chain/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n <= 0 {
			_, _ = w.Write([]byte("ok"))
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/chain/%d", n-1), http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/final", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	return mux
}

func TestRedirects(t *testing.T) {
	a := startOrigin(t, redirector())
	b := startOrigin(t, redirector())
	tlsOrigin := startTLSOrigin(t, redirector())
	roots := x509.NewCertPool()
	roots.AddCert(tlsOrigin.Certificate())

	via := func(base, to string) string { return base + "/r?to=" + url.QueryEscape(to) }
	bByName := "http://localhost:" + b.port() // another host name for server b
	const auth, cookie = "Bearer top-secret", "session=top-secret"

	type seen struct {
		srv  *origin
		path string
		auth string // Authorization it must have received
	}
	tests := []struct {
		name    string
		opts    []Option
		url     string
		wantErr error
		seen    []seen
		unseen  *origin // must get no request at all
	}{
		{name: "same host", url: via(a.URL, "/final"), seen: []seen{{a, "/final", auth}}},
		{name: "other host refused", url: via(a.URL, bByName+"/final"), wantErr: ErrRedirectRefused, unseen: b},
		{name: "other host allowlisted: credentials dropped", opts: []Option{WithRedirectHosts("localhost")},
			url: via(a.URL, bByName+"/final"), seen: []seen{{b, "/final", ""}}},
		{name: "allowlisted with its port", opts: []Option{WithRedirectHosts("LOCALHOST:" + b.port())},
			url: via(a.URL, bByName+"/final"), seen: []seen{{b, "/final", ""}}},
		{name: "allowlisted on another port only", opts: []Option{WithRedirectHosts("localhost:1")},
			url: via(a.URL, bByName+"/final"), wantErr: ErrRedirectRefused, unseen: b},
		{name: "same host name, other port: credentials dropped",
			url: via(a.URL, b.URL+"/final"), seen: []seen{{b, "/final", ""}}},
		{name: "credentials stay dropped back on the original host", opts: []Option{WithRedirectHosts("localhost")},
			url: via(a.URL, via(bByName, a.URL+"/final")), seen: []seen{{a, "/final", ""}}},
		{name: "userinfo credentials stay home", opts: []Option{WithRedirectHosts("localhost")},
			url: strings.Replace(via(a.URL, bByName+"/final"), "http://", "http://user:pw@", 1), seen: []seen{{b, "/final", ""}}},
		{name: "five redirects", url: a.URL + "/chain/5", seen: []seen{{a, "/chain/0", auth}}},
		{name: "six redirects", url: a.URL + "/chain/6", wantErr: ErrTooManyRedirects},
		{name: "loop", url: a.URL + "/loop", wantErr: ErrTooManyRedirects},
		{name: "other scheme", url: via(a.URL, "ftp://127.0.0.1/x"), wantErr: ErrRedirectRefused},
		{name: "https to http downgrade", opts: []Option{WithRootCAs(roots)},
			url: via(tlsOrigin.URL, b.URL+"/final"), wantErr: ErrRedirectRefused, unseen: b},
		{name: "allowlisted host resolving to a blocked address", opts: []Option{WithRedirectHosts("169.254.169.254")},
			url: via(a.URL, "http://169.254.169.254/latest/meta-data/"), wantErr: ErrBlockedAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hitsB := b.hits.Load()
			c := newClient(t, tt.opts...)
			hdr := http.Header{"Authorization": {auth}, "Cookie": {cookie}}
			if strings.Contains(tt.url, "user:pw@") {
				hdr = nil
			}
			body, _, err := c.Open(t.Context(), Request{URL: tt.url, Header: hdr})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				if got, err := readAll(t, body); err != nil || string(got) != "ok" {
					t.Fatalf("body %q, %v", got, err)
				}
			}
			for _, s := range tt.seen {
				h := s.srv.header(s.path)
				if h == nil {
					t.Fatalf("%s was not requested", s.path)
				}
				if got := h.Get("Authorization"); got != s.auth {
					t.Errorf("%s got Authorization %q, want %q", s.path, got, s.auth)
				}
				if s.auth == "" && h.Get("Cookie") != "" {
					t.Errorf("%s got Cookie %q after a host change", s.path, h.Get("Cookie"))
				}
			}
			if tt.unseen != nil && tt.unseen.hits.Load() != hitsB {
				t.Error("a refused redirect target was requested")
			}
		})
	}
}

func TestHostPattern(t *testing.T) {
	tests := []struct {
		pattern string
		url     string
		want    bool
	}{
		{"cdn.example.com", "https://cdn.example.com/x", true},
		{"cdn.example.com", "https://CDN.Example.com.:8443/x", true},
		{"cdn.example.com", "https://example.com/x", false},
		{"cdn.example.com:443", "https://cdn.example.com/x", true},
		{"cdn.example.com:443", "http://cdn.example.com/x", false},
		{"*.example.com", "https://a.b.example.com/x", true},
		{"*.example.com", "https://example.com/x", false},
		{"*.example.com", "https://badexample.com/x", false},
		{"[::1]:8080", "http://[::1]:8080/", true},
		{"::1", "http://[::1]:9/", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.url, func(t *testing.T) {
			p, err := parseHostPattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(tt.url)
			if got := p.match(u); got != tt.want {
				t.Errorf("match = %v, want %v", got, tt.want)
			}
		})
	}
}
