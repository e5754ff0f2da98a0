package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/dragonfly-p2p/df/manager/auth"
	"github.com/dragonfly-p2p/df/manager/jobs"
	"github.com/dragonfly-p2p/df/manager/searcher"
	"github.com/dragonfly-p2p/df/manager/store"
)

type fixture struct {
	t      *testing.T
	srv    *Server
	hs     *httptest.Server
	st     *store.Store
	tokens map[store.Role]string
	now    time.Time
}

const pw = "a-long-enough-password"

type fakeDyn struct{}

func (fakeDyn) NodeConfig(ctx context.Context, h searcher.Host) (any, error) {
	return map[string]string{"host": h.Hostname}, nil
}
func (fakeDyn) SchedulerConfig(ctx context.Context, c string) (any, error) {
	return map[string]string{"cluster": c}, nil
}

type recJobs struct{ st *store.Store }

func (j recJobs) Submit(ctx context.Context, typ string, args json.RawMessage, clusters []string, by string) (store.Job, error) {
	if typ != store.JobPreheat {
		return store.Job{}, fmt.Errorf("%w: type %q", ErrInvalidJob, typ)
	}
	return j.st.CreateJob(store.Job{Type: typ, Args: args, Clusters: clusters, CreatedBy: by})
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, tokens: map[store.Role]string{}, now: time.Now()}
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	key, _ := auth.NewKey()
	signer, _ := auth.NewSigner(key, time.Hour, nil)
	f.srv = New(st, signer, WithBcryptCost(bcrypt.MinCost), WithDynconfig(fakeDyn{}), WithJobs(recJobs{st}))
	f.hs = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.hs.Close)
	for _, r := range []store.Role{store.RoleRoot, store.RoleAdmin, store.RoleGuest} {
		h, _ := auth.HashPassword(pw, bcrypt.MinCost)
		if err := st.CreateUser(store.User{Name: string(r) + "-user", Role: r, PasswordHash: h}); err != nil {
			t.Fatal(err)
		}
		f.tokens[r] = f.login(string(r)+"-user", pw)
	}
	return f
}

func (f *fixture) login(name, password string) string {
	f.t.Helper()
	code, body := f.do("POST", "/api/v1/login", "", fmt.Sprintf(`{"name":%q,"password":%q}`, name, password))
	if code != 200 {
		f.t.Fatalf("login %s: %d %s", name, code, body)
	}
	var lr LoginResponse
	json.Unmarshal(body, &lr)
	return lr.Token
}

func (f *fixture) do(method, path, token, body string) (int, []byte) {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.hs.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func concrete(path string) string {
	r := strings.NewReplacer("{name}", "x", "{id}", "1")
	return r.Replace(path)
}

func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var e ErrorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not an error body: %s", body)
	}
	return e.Error.Code
}

// TestRouteWalk proves every registered route except the public list refuses
// anonymous and forged callers, and that guests are refused wherever the
// route needs more than a guest.
func TestRouteWalk(t *testing.T) {
	f := newFixture(t)
	routes := f.srv.Routes()
	if len(routes) < 30 {
		t.Fatalf("only %d routes registered", len(routes))
	}
	public := 0
	forged := forgeJWT(t)
	for _, rt := range routes {
		name := rt.Method + " " + rt.Path
		t.Run(name, func(t *testing.T) {
			if rt.Public {
				public++
				return
			}
			if rt.MinRole == "" {
				t.Fatal("non-public route without a minimum role")
			}
			for label, tok := range map[string]string{"anonymous": "", "garbage": "nope", "forged": forged, "bad pat": "dfm_0123456789abcdef_x"} {
				code, body := f.do(rt.Method, concrete(rt.Path), tok, `{}`)
				if code != http.StatusUnauthorized || errCode(t, body) != "unauthenticated" {
					t.Errorf("%s: got %d %s", label, code, body)
				}
			}
			code, body := f.do(rt.Method, concrete(rt.Path), f.tokens[store.RoleGuest], `{}`)
			if rt.MinRole != store.RoleGuest {
				if code != http.StatusForbidden {
					t.Errorf("guest: got %d %s", code, body)
				}
			} else if code == http.StatusUnauthorized || bytes.Contains(body, []byte("may not do this")) {
				t.Errorf("guest refused on a guest route: %d %s", code, body)
			}
		})
	}
	if public != len(PublicRoutes) {
		t.Fatalf("%d public routes registered, PublicRoutes has %d", public, len(PublicRoutes))
	}
	// And public routes really work anonymously.
	if code, _ := f.do("GET", "/api/v1/healthz", "", ""); code != 200 {
		t.Fatalf("healthz %d", code)
	}
}

// forgeJWT returns a well-formed token signed with a key the server does not know.
func forgeJWT(t *testing.T) string {
	other, _ := auth.NewSigner([]byte(strings.Repeat("z", 32)), time.Hour, nil)
	tok, _, _ := other.Sign("root-user", "root")
	return tok
}

func TestExpiredJWT(t *testing.T) {
	f := newFixture(t)
	key, _ := auth.NewKey()
	past := time.Now().Add(-2 * time.Hour)
	signer, _ := auth.NewSigner(key, time.Hour, func() time.Time { return past })
	srv := New(f.st, signer, WithBcryptCost(bcrypt.MinCost))
	tok, _, _ := signer.Sign("root-user", "root")
	// Same key, verified now: expired.
	if _, err := srv.AuthenticateToken(tok); err == nil {
		t.Fatal("expired token accepted")
	}
	// alg=none with a valid body is refused.
	parts := strings.Split(f.tokens[store.RoleRoot], ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."
	if code, _ := f.do("GET", "/api/v1/me", none, ""); code != 401 {
		t.Fatalf("alg none: %d", code)
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t)
	admin := f.tokens[store.RoleAdmin]
	huge := `{"name":"c1","description":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		code   string
	}{
		{"bad json", "POST", "/api/v1/clusters", `{"name":`, 400, "bad_json"},
		{"not an object", "POST", "/api/v1/clusters", `[1,2]`, 400, "bad_json"},
		{"trailing data", "POST", "/api/v1/clusters", `{"name":"a"}{"name":"b"}`, 400, "bad_json"},
		{"unknown field", "POST", "/api/v1/clusters", `{"name":"a","admin":true}`, 400, "bad_json"},
		{"unknown nested field", "POST", "/api/v1/clusters", `{"name":"a","scopes":{"cidr":"x"}}`, 400, "bad_json"},
		{"huge body", "POST", "/api/v1/clusters", huge, 413, "too_large"},
		{"invalid cidr", "POST", "/api/v1/clusters", `{"name":"a","scopes":{"cidrs":["10.0.0.0/40"]}}`, 400, "invalid"},
		{"invalid regex", "POST", "/api/v1/clusters", `{"name":"a","scopes":{"hostname_patterns":["(["]}}`, 400, "invalid"},
		{"invalid app regex", "POST", "/api/v1/applications", `{"name":"a","url_patterns":["*x"],"priority":1}`, 400, "invalid"},
		{"priority out of range", "POST", "/api/v1/applications", `{"name":"a","url_patterns":["x"],"priority":7}`, 400, "invalid"},
		{"sql-like name", "POST", "/api/v1/clusters", `{"name":"x'; DROP TABLE clusters;--"}`, 400, "invalid"},
		{"path-like name", "POST", "/api/v1/clusters", `{"name":"../../etc/passwd"}`, 400, "invalid"},
		{"dotdot name", "POST", "/api/v1/clusters", `{"name":"a..b"}`, 400, "invalid"},
		{"upper-case name", "POST", "/api/v1/applications", `{"name":"ABC","url_patterns":["x"]}`, 400, "invalid"},
		{"empty name", "POST", "/api/v1/clusters", `{"name":""}`, 400, "invalid"},
		{"path-like config name", "PUT", "/api/v1/configs/..%2F..%2Fx", `{"data":{}}`, 400, "invalid"},
		{"bad page", "GET", "/api/v1/clusters?page=0", "", 400, "invalid"},
		{"per_page too big", "GET", "/api/v1/clusters?per_page=100000", "", 400, "invalid"},
		{"bad job id", "GET", "/api/v1/jobs/abc", "", 400, "invalid"},
		{"keepalive bad peer id", "POST", "/api/v1/schedulers/keepalive", `{"id":"not-a-peer","cluster":"c"}`, 400, "invalid"},
		{"job into unknown cluster", "POST", "/api/v1/jobs", `{"type":"preheat","args":{},"clusters":["nope"]}`, 400, "invalid"},
		{"job type refused", "POST", "/api/v1/jobs", `{"type":"rm -rf","args":{}}`, 400, "invalid"},
		{"unknown route", "GET", "/api/v1/nope", "", 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.do(tc.method, tc.path, admin, tc.body)
			if code != tc.status || errCode(t, body) != tc.code {
				t.Fatalf("got %d %s", code, body)
			}
		})
	}
	if cs, _ := f.st.Clusters(); len(cs) != 0 {
		t.Fatalf("bad input created clusters: %+v", cs)
	}
}

func TestWrongContentType(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest("POST", f.hs.URL+"/api/v1/clusters", strings.NewReader(`{"name":"a"}`))
	req.Header.Set("Authorization", "Bearer "+f.tokens[store.RoleAdmin])
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("%d", resp.StatusCode)
	}
}

func TestTokenScopes(t *testing.T) {
	f := newFixture(t)
	admin := f.tokens[store.RoleAdmin]
	code, body := f.do("POST", "/api/v1/tokens", admin, `{"name":"ro","scopes":["read"],"expires_in":"1h"}`)
	if code != 201 {
		t.Fatalf("%d %s", code, body)
	}
	var tv TokenView
	json.Unmarshal(body, &tv)
	if !strings.HasPrefix(tv.Secret, "dfm_") {
		t.Fatalf("no secret: %s", body)
	}
	// Reads work, writes are refused for lack of scope, even though the user is admin.
	if code, body := f.do("GET", "/api/v1/clusters", tv.Secret, ""); code != 200 {
		t.Fatalf("read: %d %s", code, body)
	}
	code, body = f.do("POST", "/api/v1/clusters", tv.Secret, `{"name":"c1"}`)
	if code != 403 || !strings.Contains(string(body), "scope") {
		t.Fatalf("write with read token: %d %s", code, body)
	}
	if code, _ := f.do("POST", "/api/v1/schedulers/keepalive", tv.Secret, `{}`); code != 403 {
		t.Fatalf("keepalive with read token: %d", code)
	}
	// The secret is never listed again, and the hash is not exposed.
	_, body = f.do("GET", "/api/v1/tokens", admin, "")
	if strings.Contains(string(body), tv.Secret) || strings.Contains(string(body), "hash") {
		t.Fatalf("token list leaks: %s", body)
	}
	// A PAT cannot mint a token with more scopes than it has.
	if code, _ := f.do("POST", "/api/v1/tokens", tv.Secret, `{"name":"x","scopes":["read"],"expires_in":"1h"}`); code != 403 {
		t.Fatalf("read token minted a token: %d", code)
	}
	// Bad scope and bad expiry are refused.
	for _, b := range []string{`{"name":"x","scopes":["god"],"expires_in":"1h"}`, `{"name":"x","scopes":["read"],"expires_in":"100000h"}`, `{"name":"x","scopes":["read"],"expires_in":"-1h"}`} {
		if code, body := f.do("POST", "/api/v1/tokens", admin, b); code != 400 {
			t.Fatalf("%s: %d %s", b, code, body)
		}
	}
	// Revoked token stops working.
	if code, _ := f.do("DELETE", "/api/v1/tokens/"+tv.ID, admin, ""); code != 204 {
		t.Fatalf("delete %d", code)
	}
	if code, _ := f.do("GET", "/api/v1/clusters", tv.Secret, ""); code != 401 {
		t.Fatalf("revoked token: %d", code)
	}
}

func TestExpiredPAT(t *testing.T) {
	f := newFixture(t)
	id, secret, hash := auth.NewPAT()
	if err := f.st.CreateToken(store.Token{ID: id, Name: "old", User: "admin-user", Hash: hash, Scopes: []string{"read"}, ExpiresAt: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if code, _ := f.do("GET", "/api/v1/clusters", secret, ""); code != 401 {
		t.Fatalf("expired pat: %d", code)
	}
}

func TestLoginAndRevocation(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.do("POST", "/api/v1/login", "", `{"name":"admin-user","password":"wrong-wrong-wrong"}`); code != 401 {
		t.Fatal(code)
	}
	if code, _ := f.do("POST", "/api/v1/login", "", `{"name":"nobody","password":"wrong-wrong-wrong"}`); code != 401 {
		t.Fatal(code)
	}
	// No self-signup: anonymous user creation refused (covered by the walk), and guests too.
	if code, _ := f.do("POST", "/api/v1/users", f.tokens[store.RoleAdmin], `{"name":"x","role":"root","password":"xxxxxxxxxxxxxxxx"}`); code != 403 {
		t.Fatalf("admin created a user: %d", code)
	}
	root := f.tokens[store.RoleRoot]
	if code, body := f.do("POST", "/api/v1/users", root, `{"name":"eve","role":"admin","password":"short"}`); code != 400 {
		t.Fatalf("weak password: %d %s", code, body)
	}
	if code, body := f.do("POST", "/api/v1/users", root, `{"name":"eve","role":"admin","password":"eve-has-a-long-password"}`); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	eve := f.login("eve", "eve-has-a-long-password")
	time.Sleep(1100 * time.Millisecond) // iat has one-second resolution
	if code, _ := f.do("PATCH", "/api/v1/users/eve", root, `{"disabled":true}`); code != 200 {
		t.Fatal(code)
	}
	if code, _ := f.do("GET", "/api/v1/me", eve, ""); code != 401 {
		t.Fatalf("disabled user's session still works: %d", code)
	}
	// Rate limit after repeated failures.
	var last int
	for i := 0; i < 12; i++ {
		last, _ = f.do("POST", "/api/v1/login", "", `{"name":"guest-user","password":"wrong-wrong-wrong"}`)
	}
	if last != 429 {
		t.Fatalf("no rate limit: %d", last)
	}
	// The audit log recorded failures and successes.
	_, body := f.do("GET", "/api/v1/audit?limit=500", root, "")
	if !bytes.Contains(body, []byte(`"action":"login"`)) || !bytes.Contains(body, []byte(`"action":"user.create"`)) {
		t.Fatalf("audit: %s", body)
	}
}

func TestCRUDAndPagination(t *testing.T) {
	f := newFixture(t)
	admin, guest := f.tokens[store.RoleAdmin], f.tokens[store.RoleGuest]
	for i := 0; i < 7; i++ {
		b := fmt.Sprintf(`{"name":"c%d","scopes":{"cidrs":["10.%d.0.0/16"],"idcs":["idc%d"]}}`, i, i, i)
		if code, body := f.do("POST", "/api/v1/clusters", admin, b); code != 201 {
			t.Fatalf("%d %s", code, body)
		}
	}
	if code, _ := f.do("POST", "/api/v1/clusters", admin, `{"name":"c1"}`); code != 409 {
		t.Fatalf("dup: %d", code)
	}
	code, body := f.do("GET", "/api/v1/clusters?per_page=3&page=3", guest, "")
	var pg Page[store.Cluster]
	json.Unmarshal(body, &pg)
	if code != 200 || pg.Total != 7 || len(pg.Items) != 1 || pg.Items[0].Name != "c6" {
		t.Fatalf("%d %s", code, body)
	}
	_, body = f.do("GET", "/api/v1/clusters?name=c3", guest, "")
	json.Unmarshal(body, &pg)
	if pg.Total != 1 {
		t.Fatalf("filter: %s", body)
	}
	if code, body := f.do("PUT", "/api/v1/clusters/c1", admin, `{"description":"d","default":true}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if code, _ := f.do("DELETE", "/api/v1/clusters/c2", guest, ""); code != 403 {
		t.Fatal(code)
	}
	if code, _ := f.do("DELETE", "/api/v1/clusters/c2", admin, ""); code != 204 {
		t.Fatal(code)
	}
	if code, _ := f.do("GET", "/api/v1/clusters/c2", guest, ""); code != 404 {
		t.Fatal(code)
	}
	// Config versions.
	for i := 1; i <= 2; i++ {
		if code, body := f.do("PUT", "/api/v1/configs/node", admin, fmt.Sprintf(`{"data":{"rate":%d}}`, i)); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	_, body = f.do("GET", "/api/v1/configs/node?version=1", guest, "")
	if !strings.Contains(string(body), `"rate":1`) {
		t.Fatal(string(body))
	}
	// Jobs.
	if code, body := f.do("POST", "/api/v1/jobs", guest, `{"type":"preheat","args":{}}`); code != 403 {
		t.Fatalf("guest job: %d %s", code, body)
	}
	code, body = f.do("POST", "/api/v1/jobs", admin, `{"type":"preheat","args":{"urls":["https://example.com/x"]},"clusters":["c1"]}`)
	if code != 201 {
		t.Fatalf("%d %s", code, body)
	}
	if code, body := f.do("GET", "/api/v1/jobs?state=pending", guest, ""); code != 200 || !strings.Contains(string(body), `"total":1`) {
		t.Fatalf("%d %s", code, body)
	}
}

// TestPreheatSSRFRefused goes through the real job queue's validation.
func TestPreheatSSRFRefused(t *testing.T) {
	f := newFixture(t)
	q := jobs.New(f.st, nil, nil, jobs.NewGuard(nil))
	f.srv = New(f.st, f.srv.signer, WithBcryptCost(bcrypt.MinCost), WithJobs(q))
	f.hs.Close()
	f.hs = httptest.NewServer(f.srv.Handler())
	admin := f.login("admin-user", pw)
	f.st.PutCluster(store.Cluster{Name: "c"}, true)
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x", "http://10.1.1.1/x", "http://192.168.1.1/x", "http://localhost/x"} {
		code, body := f.do("POST", "/api/v1/jobs", admin, fmt.Sprintf(`{"type":"preheat","args":{"urls":[%q]}}`, u))
		if code != 400 || errCode(t, body) != "invalid" {
			t.Errorf("%s: %d %s", u, code, body)
		}
	}
	if js, _ := f.st.Jobs(nil); len(js) != 0 {
		t.Fatalf("%d jobs stored", len(js))
	}
}

func TestKeepaliveThroughAPI(t *testing.T) {
	f := newFixture(t)
	admin := f.tokens[store.RoleAdmin]
	code, body := f.do("POST", "/api/v1/tokens", admin, `{"name":"nodes","scopes":["cluster"],"expires_in":"24h"}`)
	if code != 201 {
		t.Fatalf("%d %s", code, body)
	}
	var tv TokenView
	json.Unmarshal(body, &tv)
	const pid = "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"
	ka := fmt.Sprintf(`{"id":%q,"cluster":"c1","hostname":"s1","ip":"10.0.0.5"}`, pid)
	if code, _ := f.do("POST", "/api/v1/seed-peers/keepalive", tv.Secret, ka); code != 404 {
		t.Fatalf("keepalive into a missing cluster: %d", code)
	}
	f.do("POST", "/api/v1/clusters", admin, `{"name":"c1"}`)
	if code, body := f.do("POST", "/api/v1/seed-peers/keepalive", tv.Secret, ka); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	// The cluster-scoped token may not read the registry; an admin session may.
	if code, _ := f.do("GET", "/api/v1/seed-peers", tv.Secret, ""); code != 403 {
		t.Fatalf("cluster token listed seed peers: %d", code)
	}
	code, body = f.do("GET", "/api/v1/seed-peers?state=active&cluster=c1", f.tokens[store.RoleGuest], "")
	if code != 200 || !strings.Contains(string(body), pid) || !strings.Contains(string(body), `"total":1`) {
		t.Fatalf("%d %s", code, body)
	}
	if code, body := f.do("GET", "/api/v1/schedulers", f.tokens[store.RoleGuest], ""); code != 200 || !strings.Contains(string(body), `"total":0`) {
		t.Fatalf("%d %s", code, body)
	}
	if code, _ := f.do("GET", "/api/v1/dynconfig/node?hostname=n1", tv.Secret, ""); code != 200 {
		t.Fatalf("dynconfig: %d", code)
	}
}

// TestJobSecretsNotShown: header values (and registry passwords) of a job
// are kept for the executor but never shown by the API, to guests or anyone.
func TestJobSecretsNotShown(t *testing.T) {
	f := newFixture(t)
	q := jobs.New(f.st, nil, nil, jobs.NewGuard(nil))
	f.srv = New(f.st, f.srv.signer, WithBcryptCost(bcrypt.MinCost), WithJobs(q))
	f.hs.Close()
	f.hs = httptest.NewServer(f.srv.Handler())
	admin, guest := f.login("admin-user", pw), f.login("guest-user", pw)
	f.st.PutCluster(store.Cluster{Name: "c"}, true)
	code, body := f.do("POST", "/api/v1/jobs", admin, `{"type":"preheat","args":{"urls":["https://93.184.216.34/x"],"headers":{"Authorization":"Bearer s3cret-token"}}}`)
	if code != 201 {
		t.Fatalf("%d %s", code, body)
	}
	check := func(what string, raw []byte) {
		t.Helper()
		var one struct{ Args []byte }
		var list struct{ Items []struct{ Args []byte } }
		var args [][]byte
		if json.Unmarshal(raw, &list) == nil && len(list.Items) > 0 {
			for _, it := range list.Items {
				args = append(args, it.Args)
			}
		} else if err := json.Unmarshal(raw, &one); err == nil {
			args = append(args, one.Args)
		}
		if len(args) == 0 {
			t.Fatalf("%s: no job in %s", what, raw)
		}
		for _, a := range args {
			if strings.Contains(string(a)+string(raw), "s3cret") || !strings.Contains(string(a), "[redacted]") {
				t.Fatalf("%s shows the job's arguments as %s", what, a)
			}
		}
	}
	check("POST /jobs", body)
	_, body = f.do("GET", "/api/v1/jobs/1", guest, "")
	check("GET /jobs/1", body)
	_, body = f.do("GET", "/api/v1/jobs", guest, "")
	check("GET /jobs", body)
	if j, _ := f.st.Job(1); !strings.Contains(string(j.Args), "s3cret-token") {
		t.Fatal("the executor lost the header value")
	}
}
