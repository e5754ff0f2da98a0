package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/protocol"
)

func TestTokenCacheExpiry(t *testing.T) {
	c := newTokenCache()
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	k := tokenKey{"r", "s", "c"}
	c.put(k, tokenEntry{value: "v", expires: now.Add(time.Minute)})
	if v, ok := c.get(k); !ok || v != "v" {
		t.Fatal("fresh token not returned")
	}
	if _, ok := c.get(tokenKey{"r", "s", "other"}); ok {
		t.Fatal("token shared across credentials")
	}
	now = now.Add(time.Minute)
	if _, ok := c.get(k); ok {
		t.Fatal("expired token returned")
	}
	for i := range maxCachedTokens + 10 {
		c.put(tokenKey{"r", "s", fmt.Sprint(i)}, tokenEntry{value: "v", expires: now.Add(time.Hour)})
	}
	if len(c.m) > maxCachedTokens {
		t.Fatalf("token cache grew to %d", len(c.m))
	}
}

func TestAccessCache(t *testing.T) {
	c := newAccessCache()
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	k := accessKey{"r", "repo", protocol.Digest{1}, "cred"}
	if c.ok(k) {
		t.Fatal("unknown key confirmed")
	}
	c.add(time.Minute, k)
	if !c.ok(k) || c.ok(accessKey{"r", "repo", protocol.Digest{1}, "other"}) || c.ok(accessKey{"r", "other", protocol.Digest{1}, "cred"}) {
		t.Fatal("confirmation leaked across credential or repository")
	}
	now = now.Add(time.Minute)
	if c.ok(k) {
		t.Fatal("expired confirmation used")
	}
	for i := range maxAccessEntries + 100 {
		c.add(time.Hour, accessKey{"r", "repo", protocol.Digest{byte(i), byte(i >> 8), byte(i >> 16)}, "c"})
	}
	if len(c.m) > maxAccessEntries {
		t.Fatalf("access cache grew to %d", len(c.m))
	}
}

func TestCredentialIsNeverPrinted(t *testing.T) {
	k, err := newCredKeyer()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "Basic YWxpY2U6czNjcjN0"
	c, err := k.parse(http.Header{"Authorization": {secret}})
	if err != nil || c.scheme != "basic" || c.key == "" || strings.Contains(c.key, "YWxp") {
		t.Fatalf("parse: %+v %v", c.scheme, err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "cred", c)
	out := fmt.Sprintf("%v %+v %#v %s", c, c, c, c) + buf.String()
	if strings.Contains(out, "YWxp") {
		t.Fatalf("credential printed: %s", out)
	}
	c2, _ := k.parse(http.Header{"Authorization": {secret}})
	c3, _ := k.parse(http.Header{"Authorization": {"Basic Ym9iOng="}})
	if c2.key != c.key || c3.key == c.key {
		t.Fatal("credential keys are not stable per credential")
	}
	for _, bad := range [][]string{{"Digest x"}, {"Basic"}, {"Basic a", "Basic b"}, {"Bearer a\x01"}, {"Bearer " + strings.Repeat("a", 9000)}} {
		if _, err := k.parse(http.Header{"Authorization": bad}); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%.20q accepted", bad)
		}
	}
	if c, err := k.parse(http.Header{}); err != nil || c.key != anonymousKey {
		t.Fatal("anonymous")
	}
}

func TestRealmAllowed(t *testing.T) {
	r, err := newRegistry(Registry{Name: "docker.io", Host: "registry-1.docker.io", Scheme: "https", AuthHosts: []string{"auth.docker.io", "*.auth.example"}}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for realm, want := range map[string]bool{
		"https://auth.docker.io/token":              true,
		"https://registry-1.docker.io/token":        true,
		"https://x.auth.example/t":                  true,
		"http://auth.docker.io/token":               false,
		"https://169.254.169.254/latest/meta-data/": false,
		"https://evil.example/token":                false,
		"https://user:pw@auth.docker.io/token":      false,
		"file:///etc/passwd":                        false,
	} {
		u, err := url.Parse(realm)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.realmAllowed(u); got != want {
			t.Errorf("%s: %v", realm, got)
		}
	}
}

func TestDialGuard(t *testing.T) {
	for addr, blocked := range map[string]bool{
		"169.254.169.254:80": true, "[fe80::1]:443": true, "0.0.0.0:80": true, "224.0.0.1:80": true,
		"[::ffff:169.254.169.254]:80": true, "127.0.0.1:5000": false, "10.1.2.3:443": false, "93.184.216.34:443": false,
	} {
		err := dialGuard("tcp", addr, nil)
		if (err != nil) != blocked {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

// noDownloads is a Downloads for tests that never reach a download.
type noDownloads struct{}

func (noDownloads) Start(download.Request) (Job, error) { return nil, errors.New("no downloads") }

// TestReadHeaderTimeout: H13 — a connection that sends no request is
// closed after ReadHeaderTimeout.
func TestReadHeaderTimeout(t *testing.T) {
	old := readHeaderTimeout
	readHeaderTimeout = 300 * time.Millisecond
	defer func() { readHeaderTimeout = old }()
	m, err := New(noDownloads{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := m.httpServer()
	if srv.MaxHeaderBytes != maxHeaderBytes || srv.IdleTimeout == 0 || srv.ReadHeaderTimeout == 0 {
		t.Fatalf("server not hardened: %+v", srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("GET /v2/ HTTP/1.1\r\nHost: x\r\n")) // never finished
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if err != nil || time.Since(start) > 3*time.Second {
		t.Fatalf("slow-header connection not closed: %v after %v", err, time.Since(start))
	}
}

// TestDefaultListenIsLoopback: H9 — by default only loopback is served.
func TestDefaultListenIsLoopback(t *testing.T) {
	m, err := New(noDownloads{}, Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := m.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Fatalf("listening on %v", ip)
	}
	if _, err := New(noDownloads{}, Config{Listen: ":65001"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("wildcard listen accepted: %v", err)
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Fatal("nil downloads accepted")
	}
}
