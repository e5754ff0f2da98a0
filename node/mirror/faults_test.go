package mirror_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/testnet"
)

// TestUpstreamErrors: the registry answering 401/403/404/429/500 or
// hanging gives the client the matching OCI error, fast.
func TestUpstreamErrors(t *testing.T) {
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "library/app:v1", 4096, 1)
	layers, _ := img.Layers()
	_, layer := blobOf(t, layers[0])
	c := startNodes(t, 1)
	cfg := testConfig(reg)
	cfg.UpstreamTimeout = time.Second
	ms := startMirror(t, c.Node(0).Downloader(), cfg)
	release := make(chan struct{})
	defer close(release)

	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		status int
		code   string
	}{
		{"401", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Basic realm="reg"`)
			w.WriteHeader(401)
		}, 401, "UNAUTHORIZED"},
		{"403", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) }, 403, "DENIED"},
		{"404", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }, 404, ""},
		{"429", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
		}, 429, "TOOMANYREQUESTS"},
		{"500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, 502, "UNKNOWN"},
		{"503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, 502, "UNKNOWN"},
		{"hang", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, 504, "UNKNOWN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodHead {
					tc.answer(w, r)
					return true
				}
				return false
			})
			defer reg.setHook(nil)
			for _, path := range []string{"/v2/library/app/manifests/v1", "/v2/library/app/blobs/" + layer} {
				start := time.Now()
				resp, body := do(t, http.MethodGet, ms.URL+path, nil)
				if resp.StatusCode != tc.status {
					t.Fatalf("%s: %d %s, want %d", path, resp.StatusCode, body, tc.status)
				}
				code := tc.code
				if code == "" {
					code = "MANIFEST_UNKNOWN"
					if strings.Contains(path, "/blobs/") {
						code = "BLOB_UNKNOWN"
					}
				}
				if got := ociCode(t, body); got != code {
					t.Fatalf("%s: code %s, want %s", path, got, code)
				}
				if tc.status == 429 && resp.Header.Get("Retry-After") != "7" {
					t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
				}
				if tc.status == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="reg"` {
					t.Fatalf("challenge %q", resp.Header.Get("WWW-Authenticate"))
				}
				if took := time.Since(start); took > 5*time.Second {
					t.Fatalf("%s took %v", path, took)
				}
			}
		})
	}
}

// TestBlobDownloadFailure: the registry's HEAD works but its blob GETs
// fail: the client gets an error status within the ready timeout.
func TestBlobDownloadFailure(t *testing.T) {
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "library/app:v1", 4096, 1)
	layers, _ := img.Layers()
	_, layer := blobOf(t, layers[0])
	c := startNodes(t, 1)
	cfg := testConfig(reg)
	cfg.ReadyTimeout = 3 * time.Second
	ms := startMirror(t, c.Node(0).Downloader(), cfg)
	for _, st := range []int{404, 500} {
		reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				w.WriteHeader(st)
				return true
			}
			return false
		})
		start := time.Now()
		resp, body := do(t, http.MethodGet, ms.URL+"/v2/library/app/blobs/"+layer, nil)
		if resp.StatusCode < 400 || time.Since(start) > 10*time.Second {
			t.Fatalf("GET failing %d: %d %s after %v", st, resp.StatusCode, body, time.Since(start))
		}
		t.Logf("registry GET %d → mirror %d %s in %v", st, resp.StatusCode, ociCode(t, body), time.Since(start).Round(time.Millisecond))
	}
	reg.setHook(nil)
}

// lyingBlob makes the registry answer GETs of digest with other bytes of
// the same length.
func lyingBlob(reg *upstreamRegistry, digest string, size int) {
	wrong := bytes.Repeat([]byte{'x'}, size)
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/"+digest) {
			return false
		}
		w.Header().Set("Docker-Content-Digest", digest)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(wrong))
		return true
	})
}

// TestDigestMismatch: H6 — a registry whose bytes do not match the digest:
// the client never sees a successful completion and nothing is kept.
func TestDigestMismatch(t *testing.T) {
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "library/app:v1", 3<<20, 2)
	layers, _ := img.Layers()
	c := startNodes(t, 1)
	cfg := testConfig(reg)
	cfg.SmallBlobSize = 1 << 20
	ms := startMirror(t, c.Node(0).Downloader(), cfg)

	check := func(t *testing.T, digest string) {
		t.Helper()
		d, _ := protocol.ParseDigest(digest)
		info, err := c.Node(0).Store().Stat(testCtx(t), protocol.ContentTaskID(d))
		if err == nil && (info.Complete || info.VerifiedPieces > 0) {
			t.Fatalf("wrong content kept: %+v", info)
		} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
	}

	t.Run("small blob: clean error status", func(t *testing.T) {
		cfgName, _ := img.ConfigName()
		rawCfg, _ := img.RawConfigFile()
		lyingBlob(reg, cfgName.String(), len(rawCfg))
		defer reg.setHook(nil)
		resp, body := do(t, http.MethodGet, ms.URL+"/v2/library/app/blobs/"+cfgName.String(), nil)
		if resp.StatusCode != http.StatusBadGateway || ociCode(t, body) != "DIGEST_INVALID" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		check(t, cfgName.String())
	})

	t.Run("large blob: the body is aborted", func(t *testing.T) {
		want, layer := blobOf(t, layers[0])
		lyingBlob(reg, layer, len(want))
		defer reg.setHook(nil)
		resp, err := http.Get(ms.URL + "/v2/library/app/blobs/" + layer)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Fatalf("the client read %d bytes and a clean end (status %d)", len(got), resp.StatusCode)
		}
		if int64(len(got)) >= int64(len(want)) {
			t.Fatal("the whole wrong body was delivered")
		}
		check(t, layer)
		// The next request, with an honest registry, succeeds.
		reg.setHook(nil)
		resp2, body := do(t, http.MethodGet, ms.URL+"/v2/library/app/blobs/"+layer, nil)
		if resp2.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Fatalf("after the fault: %d", resp2.StatusCode)
		}
	})

	t.Run("manifest", func(t *testing.T) {
		md, _ := img.Digest()
		raw, _ := img.RawManifest()
		lyingBlob(reg, md.String(), len(raw))
		defer reg.setHook(nil)
		resp, body := do(t, http.MethodGet, ms.URL+"/v2/library/app/manifests/"+md.String(), nil)
		if resp.StatusCode != http.StatusBadGateway || ociCode(t, body) != "DIGEST_INVALID" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		check(t, md.String())
	})
}

// serveManifest makes the registry answer tag (HEAD/GET) and its digest
// (GET) with body and contentType.
func serveManifest(reg *upstreamRegistry, tag string, body []byte, contentType string) string {
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/manifests/"+tag) && !strings.HasSuffix(r.URL.Path, "/manifests/"+digest) {
			return false
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Docker-Content-Digest", digest)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
		return true
	})
	return digest
}

// TestManifestRules: H7 and H8 — ambiguous manifests, a mediaType that
// differs from the Content-Type, oversize manifests and too many layers
// are refused.
func TestManifestRules(t *testing.T) {
	reg := newUpstreamRegistry(t)
	c := startNodes(t, 1)
	cfg := testConfig(reg)
	cfg.MaxManifestSize = 1 << 20
	cfg.MaxManifestEntries = 1000
	ms := startMirror(t, c.Node(0).Downloader(), cfg)
	const oci = "application/vnd.oci.image.manifest.v1+json"
	desc := func(i int) string {
		return fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%064x","size":1}`, i)
	}
	manifest := func(mt string, layers int, extra string) []byte {
		var ls []string
		for i := range layers {
			ls = append(ls, desc(i))
		}
		return []byte(`{"schemaVersion":2,"mediaType":"` + mt + `","config":` + desc(99999) + `,"layers":[` + strings.Join(ls, ",") + `]` + extra + `}`)
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		ct     string
		status int
		code   string
	}{
		{"valid", manifest(oci, 2, ""), oci, 200, ""},
		{"layers and manifests", manifest(oci, 1, `,"manifests":[`+desc(1)+`]`), oci, 502, "MANIFEST_INVALID"},
		{"mediaType differs from Content-Type", manifest(oci, 1, ""), "application/vnd.docker.distribution.manifest.v2+json", 502, "MANIFEST_INVALID"},
		{"too many layers", manifest(oci, 1001, ""), oci, 502, "MANIFEST_INVALID"},
		{"oversize", manifest(oci, 1, `,"annotations":{"x":"`+strings.Repeat("a", 1<<20)+`"}`), oci, 413, "SIZE_INVALID"},
	} {
		for _, byDigest := range []bool{false, true} {
			digest := serveManifest(reg, "t", tc.body, tc.ct)
			ref := "t"
			if byDigest {
				ref = digest
			}
			resp, body := do(t, http.MethodGet, ms.URL+"/v2/library/crafted/manifests/"+ref, nil)
			status := tc.status
			if byDigest && tc.name == "mediaType differs from Content-Type" {
				// By digest the registry's Content-Type is not part of the
				// verified content: the document's own mediaType is served.
				status = 200
			}
			if resp.StatusCode != status {
				t.Fatalf("%s (by digest %v): %d %.200s, want %d", tc.name, byDigest, resp.StatusCode, body, status)
			}
			if status != 200 && ociCode(t, body) != tc.code {
				t.Fatalf("%s: code %s", tc.name, ociCode(t, body))
			}
			if status == 200 && resp.Header.Get("Content-Type") != oci {
				t.Fatalf("%s: Content-Type %q", tc.name, resp.Header.Get("Content-Type"))
			}
		}
	}
	reg.setHook(nil)
}

// slowRegistry throttles blob GETs to about rate bytes per second.
func slowRegistry(reg *upstreamRegistry, rate int) {
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			return false
		}
		reg.inner.ServeHTTP(&slowWriter{ResponseWriter: w, rate: rate, count: reg.countBlob(r)}, r)
		return true
	})
}

type slowWriter struct {
	http.ResponseWriter
	rate  int
	count func(int)
}

func (s *slowWriter) Write(b []byte) (int, error) {
	const chunk = 64 << 10
	written := 0
	for len(b) > 0 {
		n := min(len(b), chunk)
		m, err := s.ResponseWriter.Write(b[:n])
		written += m
		s.count(m)
		if err != nil {
			return written, err
		}
		b = b[n:]
		time.Sleep(time.Duration(float64(n) / float64(s.rate) * float64(time.Second)))
	}
	return written, nil
}

// countBlob counts a blob GET done by a hook.
func (u *upstreamRegistry) countBlob(r *http.Request) func(int) {
	d := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	u.mu.Lock()
	u.blobGets[d]++
	u.mu.Unlock()
	return func(n int) {
		u.mu.Lock()
		u.blobBytes[d] += int64(n)
		u.mu.Unlock()
	}
}

// TestClientDisconnectMidBlob: a client leaving in the middle of a blob
// does not stop the download for another client, and the registry sends
// the blob about once.
func TestClientDisconnectMidBlob(t *testing.T) {
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "library/app:v1", 12<<20, 1)
	layers, _ := img.Layers()
	want, layer := blobOf(t, layers[0])
	c := startNodes(t, 1)
	ms := startMirror(t, c.Node(0).Downloader(), testConfig(reg))
	slowRegistry(reg, 8<<20) // ~1.5 s for the blob
	defer reg.setHook(nil)
	url := ms.URL + "/v2/library/app/blobs/" + layer

	leaver, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, leaver.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var got []byte
	var status int
	wg.Go(func() {
		resp, body := do(t, http.MethodGet, url, nil)
		status, got = resp.StatusCode, body
	})
	time.Sleep(200 * time.Millisecond) // the second client is attached
	leaver.Body.Close()                // the first one leaves mid-blob
	wg.Wait()
	if status != 200 || !bytes.Equal(got, want) {
		t.Fatalf("the remaining client got %d, %d bytes", status, len(got))
	}
	if _, n := reg.blobStats(layer); float64(n) > 1.1*float64(len(want)) {
		t.Fatalf("registry sent %d bytes for a %d-byte blob", n, len(want))
	}
	// The first client's early exit left a complete, verified task.
	d, _ := protocol.ParseDigest(layer)
	info, err := c.Node(0).Store().Stat(testCtx(t), protocol.ContentTaskID(d))
	if err != nil || !info.Complete {
		t.Fatalf("task after the disconnect: %+v %v", info, err)
	}
}

// TestCorruptPeer: a peer that serves a wrong layer is dropped and the
// pull through the mirror completes with the right bytes.
func TestCorruptPeer(t *testing.T) {
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "library/app:v1", 3<<20, 2)
	c := startNodes(t, 3, testnet.WithNodeOptions(func(i int) []node.Option {
		if i == 0 {
			return []node.Option{node.WithUploadStore(testnet.Corrupt)}
		}
		return nil
	}))
	cfg := testConfig(reg)
	liar := startMirror(t, c.Node(0).Downloader(), cfg)
	pullAll(t, liar.Host, img) // node 0 holds the image, and lies about it
	before := reg.totalBlobBytes()
	honest := startMirror(t, c.Node(1).Downloader(), cfg)
	pullAll(t, honest.Host, img) // digests verified by the client too
	if !c.Node(1).Downloader().IsBad(c.Node(0).Host().ID()) {
		t.Log("the lying peer was not used (the origin answered first)")
	}
	t.Logf("registry bytes: %d for the first pull, %d for the pull next to a liar", before, reg.totalBlobBytes()-before)
}

// pullAll pulls every blob of img through the mirror at host, checking
// each against its digest.
func pullAll(t *testing.T, host string, img v1.Image) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/library/app/blobs/"+d.String(), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("blob %s: %d %v", d, resp.StatusCode, err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.String() {
			t.Fatalf("blob %s: got %s", d, got)
		}
	}
}
