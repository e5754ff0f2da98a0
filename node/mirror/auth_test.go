package mirror_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/dragonfly-p2p/df/node/mirror"
	"github.com/dragonfly-p2p/df/node/source"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/testnet"
)

// tokenAuth puts distribution token authentication in front of an
// upstreamRegistry: a token endpoint on its own listener, Bearer
// challenges, private repositories readable by some users only, and blobs
// that belong to the repositories they were pushed to.
type tokenAuth struct {
	srv      *httptest.Server
	realm    string
	users    map[string]string   // user → password
	private  map[string][]string // repository → users allowed; others are public
	lifetime int

	mu        sync.Mutex
	tokens    map[string]string          // token → repository it grants ("" none)
	repoBlobs map[string]map[string]bool // repository → digests (nil: no check)
	issued    []string
	requests  atomic.Int64
}

func newTokenAuth(t *testing.T, u *upstreamRegistry, private map[string][]string) *tokenAuth {
	a := &tokenAuth{
		users:   map[string]string{"alice": "alice-s3cr3t-pw", "bob": "bob-s3cr3t-pw"},
		private: private, lifetime: 300,
		tokens: make(map[string]string), repoBlobs: make(map[string]map[string]bool),
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serveToken))
	t.Cleanup(a.srv.Close)
	a.realm = a.srv.URL + "/token"
	u.setHook(a.guard)
	return a
}

func (a *tokenAuth) allowed(user, repo string) bool {
	users, private := a.private[repo]
	if !private {
		return true
	}
	for _, u := range users {
		if u == user {
			return true
		}
	}
	return false
}

func (a *tokenAuth) serveToken(w http.ResponseWriter, r *http.Request) {
	a.requests.Add(1)
	user := ""
	if u, p, ok := r.BasicAuth(); ok {
		if a.users[u] != p {
			http.Error(w, `{"details":"bad credentials"}`, http.StatusUnauthorized)
			return
		}
		user = u
	}
	repo := ""
	if parts := strings.Split(r.URL.Query().Get("scope"), ":"); len(parts) == 3 && parts[0] == "repository" && a.allowed(user, parts[1]) {
		repo = parts[1]
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := "tok-" + hex.EncodeToString(b)
	a.mu.Lock()
	a.tokens[tok] = repo
	a.issued = append(a.issued, tok)
	a.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": a.lifetime})
}

// guard is the registry hook: it answers 401 unless the request carries a
// token for its repository, and 404 for a blob not pushed to it.
func (a *tokenAuth) guard(w http.ResponseWriter, r *http.Request) bool {
	repo, kind, ref := splitPath(r.URL.Path)
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	a.mu.Lock()
	grant, ok := a.tokens[tok]
	blobs := a.repoBlobs[repo]
	a.mu.Unlock()
	challenge := `Bearer realm="` + a.realm + `",service="test-registry"`
	switch {
	case repo == "" && ok:
		return false
	case repo == "":
	case ok && grant == repo:
		if kind == "blobs" && blobs != nil && !blobs[ref] {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to repository"}]}`)
			return true
		}
		return false
	default:
		challenge += `,scope="repository:` + repo + `:pull"`
		if ok {
			challenge += `,error="insufficient_scope"`
		}
	}
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	return true
}

// revokeAll invalidates every token issued so far.
func (a *tokenAuth) revokeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokens = make(map[string]string)
}

func (a *tokenAuth) recordBlobs(t *testing.T, repo string, img v1.Image) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	set := a.repoBlobs[repo]
	if set == nil {
		set = make(map[string]bool)
		a.repoBlobs[repo] = set
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		set[d.String()] = true
	}
	cfg, _ := img.ConfigName()
	set[cfg.String()] = true
}

func (a *tokenAuth) secrets() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := append([]string(nil), a.issued...)
	for u, p := range a.users {
		out = append(out, p, base64.StdEncoding.EncodeToString([]byte(u+":"+p)))
	}
	return out
}

// splitPath returns repository, kind and reference of a /v2/ API path.
func splitPath(p string) (repo, kind, ref string) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok || rest == "" {
		return "", "", ""
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", ""
	}
	ref, rest = rest[i+1:], rest[:i]
	j := strings.LastIndexByte(rest, '/')
	if j < 0 {
		return "", "", ""
	}
	return rest[:j], rest[j+1:], ref
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// TestTokenAuthAnonymousPublicImage: a registry that wants a token even for
// anonymous pulls serves public images through the mirror; the token is
// fetched once per scope and reaches the node's back-to-source fetches.
func TestTokenAuthAnonymousPublicImage(t *testing.T) {
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "library/app:v1", 1<<20+4096, 2)
	auth := newTokenAuth(t, reg, nil)
	c := startNodes(t, 1)
	ms := startMirror(t, c.Node(0).Downloader(), testConfig(reg))
	pulled, err := crane.Pull(ms.Host+"/library/app:v1", crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	readImage(t, pulled)
	first := auth.requests.Load()
	if first < 1 || first > 2 {
		t.Fatalf("%d token requests for one repository", first)
	}
	pulled, _ = crane.Pull(ms.Host+"/library/app:v1", crane.Insecure)
	readImage(t, pulled)
	if n := auth.requests.Load(); n != first {
		t.Fatalf("cached token not reused: %d token requests", n)
	}
	if want, _ := img.Digest(); mustDigest(t, pulled) != want {
		t.Fatal("pulled another image")
	}
}

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPrivateImagePolicy: H11 and H12 — a private repository's content is
// served from the cluster only to callers the registry confirms, a public
// repository path does not unlock a private layer, and no credential or
// token ever appears in logs or metrics.
func TestPrivateImagePolicy(t *testing.T) {
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "team/secret:v1", 1<<20+4096, 2)
	pub := testImage(t, reg, "library/pub:v1", 2048, 1)
	auth := newTokenAuth(t, reg, map[string][]string{"team/secret": {"alice"}})
	auth.recordBlobs(t, "team/secret", img)
	auth.recordBlobs(t, "library/pub", pub)

	nodeLogs := &syncBuffer{}
	c := startNodes(t, 2, testnet.WithLogger(slog.New(slog.NewJSONHandler(nodeLogs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	cfg := testConfig(reg)
	a := startMirror(t, c.Node(0).Downloader(), cfg)
	b := startMirror(t, c.Node(1).Downloader(), cfg)
	layers, _ := img.Layers()
	_, layer := blobOf(t, layers[0])
	want, _ := blobOf(t, layers[0])
	alice := hdr("Authorization", basic("alice", "alice-s3cr3t-pw"))

	// Anonymous: 401 with a challenge the client can answer itself.
	resp, body := do(t, http.MethodGet, a.URL+"/v2/team/secret/manifests/v1", nil)
	if resp.StatusCode != http.StatusUnauthorized || ociCode(t, body) != "UNAUTHORIZED" {
		t.Fatalf("anonymous manifest: %d %s", resp.StatusCode, body)
	}
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `realm="`+auth.realm+`"`) || !strings.Contains(ch, `scope="repository:team/secret:pull"`) {
		t.Fatalf("challenge %q", ch)
	}
	// Alice pulls on node A: the layer is now in the cluster.
	resp, _ = do(t, http.MethodGet, a.URL+"/v2/team/secret/manifests/v1", alice)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("alice manifest on A: %d", resp.StatusCode)
	}
	resp, body = do(t, http.MethodGet, a.URL+"/v2/team/secret/blobs/"+layer, alice)
	if resp.StatusCode != http.StatusOK || string(body) != string(want) {
		t.Fatalf("alice blob on A: %d", resp.StatusCode)
	}
	_, fromRegistry := reg.blobStats(layer)

	d, _ := protocol.ParseDigest(layer)
	id := protocol.ContentTaskID(d)
	for _, tc := range []struct {
		name, path string
		h          map[string][]string
		status     int
	}{
		{"anonymous", "/v2/team/secret/blobs/" + layer, nil, http.StatusUnauthorized},
		{"bob", "/v2/team/secret/blobs/" + layer, hdr("Authorization", basic("bob", "bob-s3cr3t-pw")), http.StatusUnauthorized},
		{"wrong password", "/v2/team/secret/blobs/" + layer, hdr("Authorization", basic("alice", "guess")), http.StatusUnauthorized},
		{"forged bearer", "/v2/team/secret/blobs/" + layer, hdr("Authorization", "Bearer forged"), http.StatusUnauthorized},
		{"through a public repository", "/v2/library/pub/blobs/" + layer, nil, http.StatusNotFound},
		{"through a public repository with bob", "/v2/library/pub/blobs/" + layer, hdr("Authorization", basic("bob", "bob-s3cr3t-pw")), http.StatusNotFound},
	} {
		resp, body := do(t, http.MethodGet, b.URL+tc.path, tc.h)
		if resp.StatusCode != tc.status {
			t.Fatalf("%s on B: %d %s, want %d", tc.name, resp.StatusCode, body, tc.status)
		}
		if _, err := c.Node(1).Store().Stat(testCtx(t), id); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: node B started downloading the private layer (%v)", tc.name, err)
		}
	}
	// Alice on node B: served, from peer A (the registry sends no more bytes).
	resp, body = do(t, http.MethodGet, b.URL+"/v2/team/secret/blobs/"+layer, alice)
	if resp.StatusCode != http.StatusOK || string(body) != string(want) {
		t.Fatalf("alice blob on B: %d", resp.StatusCode)
	}
	if _, n := reg.blobStats(layer); n != fromRegistry {
		t.Logf("node logs:\n%s", nodeLogs.String())
		t.Fatalf("the registry sent the layer again (%d → %d bytes)", fromRegistry, n)
	}
	// A client that answered the challenge itself sends the registry's
	// Bearer token: forwarded to the registry, which accepts it.
	req, _ := http.NewRequest(http.MethodGet, auth.realm+"?service=test-registry&scope=repository:team/secret:pull", nil)
	req.SetBasicAuth("alice", "alice-s3cr3t-pw")
	tresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	_ = json.NewDecoder(tresp.Body).Decode(&tok)
	tresp.Body.Close()
	resp, _ = do(t, http.MethodGet, b.URL+"/v2/team/secret/manifests/v1", hdr("Authorization", "Bearer "+tok.Token))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("client bearer on B: %d", resp.StatusCode)
	}
	// crane with alice's credentials answers the mirror's 401 itself.
	pulled, err := crane.Pull(b.Host+"/team/secret:v1", crane.Insecure,
		crane.WithAuth(&authn.Basic{Username: "alice", Password: "alice-s3cr3t-pw"}))
	if err == nil {
		_, err = pulled.Manifest()
	}
	_ = err // crane sends credentials only after a /v2/ challenge: the mirror has none, so this may fail; it must not leak

	// H12: no secret in any log or metric.
	var all strings.Builder
	all.WriteString(a.Logs.String() + b.Logs.String() + nodeLogs.String())
	for _, ms := range []*mirrorServer{a, b} {
		all.WriteString(gatherText(t, ms.Reg))
	}
	if !strings.Contains(a.Logs.String(), "team/secret") {
		t.Fatal("mirror logs are empty: the leak check would prove nothing")
	}
	for _, s := range auth.secrets() {
		if strings.Contains(all.String(), s) {
			t.Fatalf("secret %.12q… found in logs or metrics", s)
		}
	}
}

func gatherText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestRealmOnAnotherHostIsRefused: a challenge naming a token endpoint
// that is not the registry host nor an auth host gets no request.
func TestRealmOnAnotherHostIsRefused(t *testing.T) {
	reg := newUpstreamRegistry(t)
	testImage(t, reg, "library/app:v1", 1024, 1)
	auth := newTokenAuth(t, reg, nil)
	auth.realm = strings.Replace(auth.realm, "127.0.0.1", "localhost", 1)
	c := startNodes(t, 1)
	ms := startMirror(t, c.Node(0).Downloader(), testConfig(reg))
	resp, body := do(t, http.MethodGet, ms.URL+"/v2/library/app/manifests/v1", nil)
	if resp.StatusCode != http.StatusBadGateway || ociCode(t, body) != "UNAUTHORIZED" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if n := auth.requests.Load(); n != 0 {
		t.Fatalf("%d requests to a refused token endpoint", n)
	}
	// Allowed as an auth host, it works.
	cfg := testConfig(reg)
	cfg.Registries[0].AuthHosts = []string{"localhost"}
	ms2 := startMirror(t, c.Node(0).Downloader(), cfg)
	if resp, body := do(t, http.MethodGet, ms2.URL+"/v2/library/app/manifests/v1", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("with auth host: %d %s", resp.StatusCode, body)
	}
}

// TestWrapOrigin: back-to-source requests without credentials (a seed
// peer's) get an anonymous token, and a revoked token is replaced.
func TestWrapOrigin(t *testing.T) {
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "library/app:v1", 4096, 1)
	auth := newTokenAuth(t, reg, nil)
	layers, _ := img.Layers()
	want, layer := blobOf(t, layers[0])
	client, err := source.New(source.WithAllowedNetworks([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}))
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + reg.Host + "/v2/library/app/blobs/" + layer
	ctx := context.Background()
	if _, err := client.Stat(ctx, source.Request{URL: url}); !errors.Is(err, source.ErrUnauthorized) {
		t.Fatalf("unwrapped: %v", err)
	}
	origin, err := mirror.WrapOrigin(client, testConfig(reg))
	if err != nil {
		t.Fatal(err)
	}
	read := func() {
		t.Helper()
		rc, err := origin.OpenRange(ctx, source.Request{URL: url}, 0, int64(len(want)), "")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil || string(got) != string(want) {
			t.Fatalf("read: %v", err)
		}
	}
	if m, err := origin.Stat(ctx, source.Request{URL: url}); err != nil || m.ContentLength != int64(len(want)) {
		t.Fatalf("wrapped stat: %+v %v", m, err)
	}
	read()
	n := auth.requests.Load()
	read()
	if auth.requests.Load() != n {
		t.Fatal("token not cached")
	}
	auth.revokeAll()
	read() // 401 with the cached token → fresh token → success
	if auth.requests.Load() != n+1 {
		t.Fatalf("token not refreshed once: %d requests", auth.requests.Load()-n)
	}
	// A URL of an unconfigured host passes through untouched.
	other := "http://127.0.0.1:1/v2/library/app/blobs/" + layer
	if _, err := origin.Stat(ctx, source.Request{URL: other}); err == nil {
		t.Fatal("unreachable origin answered")
	}
}
