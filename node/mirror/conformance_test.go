package mirror_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/dragonfly-p2p/df/node/mirror"
)

// blobOf returns a layer's compressed bytes and digest.
func blobOf(t *testing.T, l v1.Layer) ([]byte, string) {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return b, d.String()
}

// TestConformance is the pull-only conformance suite: every endpoint,
// header, range and error of the mirror against a real registry and a real
// node.
func TestConformance(t *testing.T) {
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "library/app:v1", 3<<19, 3) // 3 layers of ~1.5 MiB: streamed
	rawManifest, _ := img.RawManifest()
	mdigest, _ := img.Digest()
	mtype, _ := img.MediaType()
	layers, _ := img.Layers()
	big, bigDigest := blobOf(t, layers[0])
	cfgName, _ := img.ConfigName()
	rawConfig, _ := img.RawConfigFile()

	c := startNodes(t, 1)
	ms := startMirror(t, c.Node(0).Downloader(), testConfig(reg))
	base := ms.URL + "/v2/library/app"

	t.Run("base", func(t *testing.T) {
		for _, path := range []string{"/v2/", "/v2"} {
			resp, body := do(t, http.MethodGet, ms.URL+path, nil)
			if resp.StatusCode != http.StatusOK || string(body) != "{}" {
				t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
			}
			if v := resp.Header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
				t.Fatalf("API version header %q", v)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		}
		resp, body := do(t, http.MethodHead, ms.URL+"/v2/", nil)
		if resp.StatusCode != http.StatusOK || len(body) != 0 {
			t.Fatalf("HEAD /v2/: %d %q", resp.StatusCode, body)
		}
	})

	checkManifestHeaders := func(t *testing.T, resp *http.Response) {
		t.Helper()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != string(mtype) {
			t.Fatalf("Content-Type %q, want %q", got, mtype)
		}
		if got := resp.Header.Get("Docker-Content-Digest"); got != mdigest.String() {
			t.Fatalf("Docker-Content-Digest %q, want %s", got, mdigest)
		}
		if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(rawManifest)) {
			t.Fatalf("Content-Length %q, want %d", got, len(rawManifest))
		}
	}

	t.Run("manifest by tag", func(t *testing.T) {
		resp, body := do(t, http.MethodHead, base+"/manifests/v1", nil)
		checkManifestHeaders(t, resp)
		if len(body) != 0 {
			t.Fatal("HEAD returned a body")
		}
		resp, body = do(t, http.MethodGet, base+"/manifests/v1", nil)
		checkManifestHeaders(t, resp)
		if !bytes.Equal(body, rawManifest) {
			t.Fatal("manifest bytes differ from the registry's")
		}
	})

	t.Run("manifest by digest", func(t *testing.T) {
		resp, body := do(t, http.MethodGet, base+"/manifests/"+mdigest.String(), nil)
		checkManifestHeaders(t, resp)
		if !bytes.Equal(body, rawManifest) {
			t.Fatal("manifest bytes differ")
		}
		resp, body = do(t, http.MethodHead, base+"/manifests/"+mdigest.String(), nil)
		checkManifestHeaders(t, resp)
		if len(body) != 0 {
			t.Fatal("HEAD returned a body")
		}
	})

	t.Run("blobs", func(t *testing.T) {
		for _, l := range layers {
			want, d := blobOf(t, l)
			resp, body := do(t, http.MethodGet, base+"/blobs/"+d, nil)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
				t.Fatalf("GET blob %s: %d, %d bytes (want %d)", d, resp.StatusCode, len(body), len(want))
			}
			for k, v := range map[string]string{
				"Content-Type": "application/octet-stream", "Content-Length": strconv.Itoa(len(want)),
				"Docker-Content-Digest": d, "Accept-Ranges": "bytes", "ETag": `"` + d + `"`,
			} {
				if got := resp.Header.Get(k); got != v {
					t.Fatalf("%s: %q, want %q", k, got, v)
				}
			}
		}
		resp, body := do(t, http.MethodGet, base+"/blobs/"+cfgName.String(), nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, rawConfig) {
			t.Fatalf("GET config blob: %d", resp.StatusCode)
		}
		resp, body = do(t, http.MethodHead, base+"/blobs/"+bigDigest, nil)
		if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(len(big)) ||
			resp.Header.Get("Docker-Content-Digest") != bigDigest {
			t.Fatalf("HEAD blob: %d, headers %v", resp.StatusCode, resp.Header)
		}
	})

	t.Run("ranges", func(t *testing.T) {
		size := int64(len(big))
		many := "bytes=" + strings.Repeat("0-0,", 999) + "0-0"
		for _, tc := range []struct {
			rng    string
			status int
			start  int64
			n      int64
		}{
			{"bytes=0-9", 206, 0, 10},
			{"bytes=10-", 206, 10, size - 10},
			{"bytes=-10", 206, size - 10, 10},
			{"bytes=0-", 206, 0, size},
			{" bytes=1-2", 206, 1, 2},
			{"bytes=0-99999999999", 206, 0, size},
			{"bytes=-99999999999", 206, 0, size},
			{"bytes=" + strconv.FormatInt(size-1, 10) + "-", 206, size - 1, 1},
			{"bytes=--5", 200, 0, size},
			{"bytes=+5-", 200, 0, size},
			{"bytes=5-2", 200, 0, size},
			{"items=0-1", 200, 0, size},
			{"bytes=0-1,3-4", 200, 0, size},
			{many, 200, 0, size},
			{"bytes=-0", 416, 0, 0},
			{"bytes=9223372036854775807-", 416, 0, 0},
			{"bytes=" + strconv.FormatInt(size, 10) + "-", 416, 0, 0},
		} {
			resp, body := do(t, http.MethodGet, base+"/blobs/"+bigDigest, hdr("Range", tc.rng))
			if resp.StatusCode != tc.status {
				t.Fatalf("Range %.40q: status %d, want %d", tc.rng, resp.StatusCode, tc.status)
			}
			switch tc.status {
			case 416:
				if got := resp.Header.Get("Content-Range"); got != "bytes */"+strconv.FormatInt(size, 10) {
					t.Fatalf("Range %q: 416 Content-Range %q", tc.rng, got)
				}
			case 206:
				want := "bytes " + strconv.FormatInt(tc.start, 10) + "-" + strconv.FormatInt(tc.start+tc.n-1, 10) + "/" + strconv.FormatInt(size, 10)
				if got := resp.Header.Get("Content-Range"); got != want {
					t.Fatalf("Range %q: Content-Range %q, want %q", tc.rng, got, want)
				}
				fallthrough
			default:
				if !bytes.Equal(body, big[tc.start:tc.start+tc.n]) {
					t.Fatalf("Range %.40q: %d bytes, not bytes %d+%d", tc.rng, len(body), tc.start, tc.n)
				}
				if resp.Header.Get("Content-Length") != strconv.FormatInt(tc.n, 10) {
					t.Fatalf("Range %q: Content-Length %q", tc.rng, resp.Header.Get("Content-Length"))
				}
			}
		}
		// If-Range: the blob's ETag keeps the range, anything else asks for all.
		resp, body := do(t, http.MethodGet, base+"/blobs/"+bigDigest, hdr("Range", "bytes=0-9", "If-Range", `"`+bigDigest+`"`))
		if resp.StatusCode != 206 || len(body) != 10 {
			t.Fatalf("If-Range matching: %d, %d bytes", resp.StatusCode, len(body))
		}
		resp, body = do(t, http.MethodGet, base+"/blobs/"+bigDigest, hdr("Range", "bytes=0-9", "If-Range", `"other"`))
		if resp.StatusCode != 200 || len(body) != len(big) {
			t.Fatalf("If-Range not matching: %d, %d bytes", resp.StatusCode, len(body))
		}
		// Two Range headers: ignored.
		h := http.Header{"Range": {"bytes=0-1", "bytes=2-3"}}
		resp, _ = do(t, http.MethodGet, base+"/blobs/"+bigDigest, h)
		if resp.StatusCode != 200 {
			t.Fatalf("two Range headers: %d", resp.StatusCode)
		}
		// HEAD with a range: headers of the range, no body.
		resp, body = do(t, http.MethodHead, base+"/blobs/"+bigDigest, hdr("Range", "bytes=0-9"))
		if resp.StatusCode != 206 || len(body) != 0 || resp.Header.Get("Content-Length") != "10" {
			t.Fatalf("HEAD with Range: %d, %d bytes, Content-Length %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
		}
	})

	t.Run("errors", func(t *testing.T) {
		unknown := "sha256:" + strings.Repeat("ab", 32)
		for _, tc := range []struct {
			method, path string
			status       int
			code         string
		}{
			{"GET", "/v2/library/app/manifests/nope", 404, "MANIFEST_UNKNOWN"},
			{"HEAD", "/v2/library/app/manifests/nope", 404, ""},
			{"GET", "/v2/library/app/manifests/" + unknown, 404, "MANIFEST_UNKNOWN"},
			{"GET", "/v2/library/app/blobs/" + unknown, 404, "BLOB_UNKNOWN"},
			{"HEAD", "/v2/library/app/blobs/" + unknown, 404, ""},
			{"GET", "/v2/library/missing/manifests/v1", 404, "MANIFEST_UNKNOWN"},
			{"GET", "/v2/library/app/tags/list", 404, "UNSUPPORTED"},
			{"GET", "/v2/_catalog", 404, "UNSUPPORTED"},
			{"GET", "/v2/library/app/referrers/" + unknown, 404, "UNSUPPORTED"},
			{"GET", "/v1/search", 404, "UNSUPPORTED"},
			{"POST", "/v2/library/app/blobs/uploads/", 405, "UNSUPPORTED"},
			{"PUT", "/v2/library/app/manifests/v1", 405, "UNSUPPORTED"},
			{"DELETE", "/v2/library/app/manifests/" + mdigest.String(), 405, "UNSUPPORTED"},
			{"PATCH", "/v2/library/app/blobs/uploads/x", 405, "UNSUPPORTED"},
		} {
			resp, body := do(t, tc.method, ms.URL+tc.path, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d, want %d (%s)", tc.method, tc.path, resp.StatusCode, tc.status, body)
			}
			if tc.code != "" {
				if got := ociCode(t, body); got != tc.code {
					t.Fatalf("%s %s: code %s, want %s", tc.method, tc.path, got, tc.code)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("error Content-Type %q", ct)
				}
			}
			if tc.status == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
				t.Fatalf("405 without Allow")
			}
		}
	})

	t.Run("crane pull", func(t *testing.T) {
		pulled, err := crane.Pull(ms.Host+"/library/app:v1", crane.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		readImage(t, pulled)
		if d, _ := pulled.Digest(); d != mdigest {
			t.Fatalf("pulled %s, want %s", d, mdigest)
		}
	})

	t.Run("index", func(t *testing.T) {
		idx, err := random.Index(1024, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		reg.pushIndex(t, "library/multi:v1", idx)
		raw, _ := idx.RawManifest()
		id, _ := idx.Digest()
		resp, body := do(t, http.MethodGet, ms.URL+"/v2/library/multi/manifests/v1", nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, raw) || resp.Header.Get("Docker-Content-Digest") != id.String() {
			t.Fatalf("index: %d %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.oci.image.index.v1+json" {
			t.Fatalf("index Content-Type %q", ct)
		}
		im, _ := idx.IndexManifest()
		child := im.Manifests[0].Digest.String()
		resp, _ = do(t, http.MethodGet, ms.URL+"/v2/library/multi/manifests/"+child, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != child {
			t.Fatalf("child manifest: %d", resp.StatusCode)
		}
	})

	t.Run("accept", func(t *testing.T) {
		// The client's Accept goes to the registry (filtered to manifest types).
		var got atomic.Value
		reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, "/manifests/v1") {
				got.Store(r.Header.Get("Accept"))
			}
			return false
		})
		defer reg.setHook(nil)
		do(t, http.MethodHead, base+"/manifests/v1", hdr("Accept", "application/vnd.docker.distribution.manifest.v2+json, text/html"))
		if v, _ := got.Load().(string); v != "application/vnd.docker.distribution.manifest.v2+json" {
			t.Fatalf("registry saw Accept %q", v)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		mfs, err := ms.Reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, mf := range mfs {
			names[mf.GetName()] = true
		}
		for _, n := range []string{"dragonfly_dfnode_mirror_requests_total", "dragonfly_dfnode_mirror_served_bytes_total",
			"dragonfly_dfnode_mirror_upstream_requests_total", "dragonfly_dfnode_mirror_access_checks_total"} {
			if !names[n] {
				t.Fatalf("metric %s missing", n)
			}
		}
	})
}

// readImage reads every layer (go-containerregistry verifies each digest).
func readImage(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
}

// trap is a listener that records connection attempts.
type trap struct {
	ln    net.Listener
	conns atomic.Int64
}

func newTrap(t *testing.T) *trap {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trap{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tr.conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tr
}

// TestUnlistedRegistryIsRefusedWithoutConnecting: H3 — ns, Host and custom
// headers naming a registry that is not configured get 404 NAME_UNKNOWN,
// and nothing connects to it.
func TestUnlistedRegistryIsRefusedWithoutConnecting(t *testing.T) {
	reg := newUpstreamRegistry(t)
	testImage(t, reg, "library/app:v1", 1024, 1)
	tr := newTrap(t)
	c := startNodes(t, 1)
	ms := startMirror(t, c.Node(0).Downloader(), testConfig(reg))
	cfgNoDefault := testConfig(reg)
	cfgNoDefault.DefaultRegistry = "none"
	msNoDefault := startMirror(t, c.Node(0).Downloader(), cfgNoDefault)

	trapHost := tr.ln.Addr().String()
	for _, url := range []string{
		ms.URL + "/v2/library/app/manifests/v1?ns=" + trapHost,
		ms.URL + "/v2/library/app/blobs/sha256:" + strings.Repeat("0", 64) + "?ns=" + trapHost,
		ms.URL + "/v2/library/app/manifests/v1?ns=evil.example.com",
		ms.URL + "/v2/library/app/manifests/v1?ns=169.254.169.254",
		ms.URL + "/v2/library/app/manifests/v1?ns=UPPER.example", // host names are case-insensitive
		msNoDefault.URL + "/v2/library/app/manifests/v1",
	} {
		resp, body := do(t, http.MethodGet, url, nil)
		if resp.StatusCode != http.StatusNotFound || ociCode(t, body) != "NAME_UNKNOWN" {
			t.Fatalf("%s: %d %s", url, resp.StatusCode, body)
		}
	}
	// Host and custom headers do not choose an upstream: the default serves.
	req, _ := http.NewRequest(http.MethodHead, ms.URL+"/v2/library/app/manifests/v1", nil)
	req.Host = trapHost
	req.Header.Set("X-Registry", trapHost)
	req.Header.Set("X-Forwarded-Host", trapHost)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("default registry: %d", resp.StatusCode)
	}
	time.Sleep(100 * time.Millisecond)
	if n := tr.conns.Load(); n != 0 {
		t.Fatalf("the unlisted registry received %d connections", n)
	}
	// A bad ns is a bad request, not a lookup.
	for _, ns := range []string{"a..b", "host:99999", "[::1", "x/y"} {
		resp, body := do(t, http.MethodGet, ms.URL+"/v2/library/app/manifests/v1?ns="+ns, nil)
		if resp.StatusCode != http.StatusBadRequest || ociCode(t, body) != "NAME_INVALID" {
			t.Fatalf("ns=%s: %d %s", ns, resp.StatusCode, body)
		}
	}
	// ns given twice is refused.
	resp2, _ := do(t, http.MethodGet, ms.URL+"/v2/library/app/manifests/v1?ns="+reg.Host+"&ns="+trapHost, nil)
	if resp2.StatusCode != http.StatusBadRequest {
		t.Fatalf("two ns: %d", resp2.StatusCode)
	}
	if n := tr.conns.Load(); n != 0 {
		t.Fatalf("the unlisted registry received %d connections", n)
	}
}

// TestHostMapping: a configured Host mapping selects the registry.
func TestHostMapping(t *testing.T) {
	reg := newUpstreamRegistry(t)
	testImage(t, reg, "team/app:v1", 1024, 1)
	c := startNodes(t, 1)
	cfg := testConfig(reg)
	cfg.DefaultRegistry = "none"
	cfg.Mappings = map[string]string{"mirror.internal": reg.Host}
	ms := startMirror(t, c.Node(0).Downloader(), cfg)
	req, _ := http.NewRequest(http.MethodHead, ms.URL+"/v2/team/app/manifests/v1", nil)
	req.Host = "mirror.internal:65001"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mapped host: %d", resp.StatusCode)
	}
	_ = mirror.ErrRegistryNotMirrored
}
