package mirror_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest sends a request line as written (no client-side cleaning or
// escaping) and returns the status and body.
func rawRequest(t *testing.T, host, method, target string, extra string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", method, target, host, extra)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %.60s: %v", method, target, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, b.String()
}

// TestMalformedNamesAndReferences: H2 — every malformed name, reference or
// digest is refused with 400/404 and an OCI error body, and nothing reaches
// the registry.
func TestMalformedNamesAndReferences(t *testing.T) {
	reg := newUpstreamRegistry(t)
	testImage(t, reg, "library/app:v1", 1024, 1)
	c := startNodes(t, 1)
	ms := startMirror(t, c.Node(0).Downloader(), testConfig(reg))
	hex64 := strings.Repeat("a", 64)
	long := strings.Repeat("a", 256)
	for _, tc := range []struct {
		target string
		status int
		code   string
	}{
		{"/v2/../etc/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/library/../app/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/%2e%2e/library/app/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/library/%2E%2E/app/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/library%2fapp/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/library/app%00/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/Library/App/manifests/v1", 400, "NAME_INVALID"},
		{"/v2//manifests/v1", 400, "NAME_INVALID"},
		{"/v2/library//app/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/-app/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/app-/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/app./manifests/v1", 400, "NAME_INVALID"},
		{"/v2/a..b/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/" + long + "/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/" + strings.Repeat("a/", 127) + "aa/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/" + strings.Repeat("x", 8000) + "/manifests/v1", 400, "NAME_INVALID"},
		{"/v2/library/app/blobs/v1", 400, "DIGEST_INVALID"},
		{"/v2/library/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", 400, "DIGEST_INVALID"},
		{"/v2/library/app/blobs/sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709", 400, "DIGEST_INVALID"},
		{"/v2/library/app/blobs/sha512:" + strings.Repeat("a", 128), 400, "DIGEST_INVALID"},
		{"/v2/library/app/blobs/sha256:" + hex64[:63], 400, "DIGEST_INVALID"},
		{"/v2/library/app/blobs/sha256:" + hex64 + "a", 400, "DIGEST_INVALID"},
		{"/v2/library/app/blobs/sha256:" + strings.ToUpper(hex64), 400, "DIGEST_INVALID"},
		{"/v2/library/app/blobs/sha256:" + strings.Repeat("g", 64), 400, "DIGEST_INVALID"},
		{"/v2/library/app/blobs/SHA256:" + hex64, 400, "DIGEST_INVALID"},
		{"/v2/library/app/blobs/sha256:", 400, "DIGEST_INVALID"},
		{"/v2/library/app/manifests/sha256:short", 400, "DIGEST_INVALID"},
		{"/v2/library/app/manifests/md5:d41d8cd98f00b204e9800998ecf8427e", 400, "DIGEST_INVALID"},
		{"/v2/library/app/manifests/.hidden", 404, "MANIFEST_UNKNOWN"},
		{"/v2/library/app/manifests/" + strings.Repeat("t", 129), 404, "MANIFEST_UNKNOWN"},
		{"/v2/library/app/manifests/", 404, "MANIFEST_UNKNOWN"},
		{"/v2/library/app/manifests/v1%20", 400, "NAME_INVALID"},
		{"/v2/library/app/blobs/", 400, "DIGEST_INVALID"},
	} {
		status, body := rawRequest(t, ms.Host, "GET", tc.target, "")
		if status != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) {
			t.Errorf("GET %.80s: %d %.200s, want %d %s", tc.target, status, body, tc.status, tc.code)
		}
	}
	if n := reg.requests.Load(); n != 0 {
		t.Fatalf("malformed requests caused %d registry requests: %v", n, reg.seen())
	}
}

// TestServerHardening: H13 — a header flood is refused; the mirror's
// server limits header size and reads headers under a deadline.
func TestServerHardening(t *testing.T) {
	reg := newUpstreamRegistry(t)
	c := startNodes(t, 1)
	ms := startMirror(t, c.Node(0).Downloader(), testConfig(reg))
	flood := strings.Repeat("X-Flood: "+strings.Repeat("a", 1000)+"\r\n", 100) // 100 KB of headers
	status, _ := rawRequest(t, ms.Host, "GET", "/v2/", flood)
	if status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("header flood: %d, want 431", status)
	}
	// A client that sends nothing is not served forever (ReadHeaderTimeout);
	// here: an idle connection does not block a second client.
	idle, err := net.Dial("tcp", ms.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if status, _ := rawRequest(t, ms.Host, "GET", "/v2/", ""); status != 200 {
		t.Fatalf("second client: %d", status)
	}
}
