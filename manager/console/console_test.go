package console

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/dragonfly-p2p/df/manager/api"
	"github.com/dragonfly-p2p/df/manager/auth"
	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/manager/telemetry"
)

const testPW = "a-long-enough-password"

// newServer runs the API with the console mounted, as the manager does:
// the console talks to one API server, which another one mounts at "/".
func newServer(t *testing.T) (*httptest.Server, *store.Store) { return newServerTB(t) }

func newServerTB(t testing.TB) (*httptest.Server, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := auth.NewKey()
	signer, err := auth.NewSigner(key, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		name string
		role store.Role
	}{{"root", store.RoleRoot}, {"alice", store.RoleAdmin}, {"guest", store.RoleGuest}} {
		h, _ := bcrypt.GenerateFromPassword([]byte(testPW), bcrypt.MinCost)
		if err := st.CreateUser(store.User{Name: u.name, Role: u.role, PasswordHash: h}); err != nil {
			t.Fatal(err)
		}
	}
	// One telemetry recorder for both API servers: keepalives posted to the
	// outer one show in the console's pages.
	opts := []api.Option{api.WithBcryptCost(bcrypt.MinCost), api.WithTelemetry(telemetry.New(time.Minute))}
	c, err := New(api.New(st, signer, opts...))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api.New(st, signer, append(opts, api.WithConsole(c))...).Handler())
	t.Cleanup(hs.Close)
	return hs, st
}

type browser struct {
	t    testing.TB
	base string
	c    *http.Client
}

func newBrowser(t testing.TB, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login signs in and returns the session's CSRF token.
func (b *browser) login(name string) string {
	b.t.Helper()
	resp, body := b.do("POST", "/login", url.Values{"name": {name}, "password": {testPW}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login %s: %d %s", name, resp.StatusCode, body)
	}
	_, page := b.do("GET", "/", nil, nil)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no csrf token on the overview: %s", page)
	}
	return m[1]
}

func TestEveryPageNeedsASession(t *testing.T) {
	hs, _ := newServer(t)
	b := newBrowser(t, hs.URL)
	gets := []string{"/", "/clusters", "/clusters/x", "/nodes", "/jobs", "/jobs/1", "/jobs/1/progress", "/users", "/tokens",
		"/applications", "/applications/x", "/audit", "/nope"}
	for _, p := range gets {
		resp, _ := b.do("GET", p, nil, nil)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("GET %s without session: %d %q, want 303 to /login", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	posts := []string{"/logout", "/clusters", "/clusters/x", "/clusters/x/delete", "/nodes/schedulers/x/delete", "/jobs",
		"/users", "/users/x", "/users/x/delete", "/tokens", "/tokens/x/delete", "/account/password", "/applications",
		"/applications/x", "/applications/x/delete"}
	for _, p := range posts {
		resp, _ := b.do("POST", p, url.Values{"csrf": {"x"}}, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s without session: %d, want 401", p, resp.StatusCode)
		}
	}
	// A forged cookie is no session either.
	u, _ := url.Parse(hs.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: SessionCookie, Value: randomID()}})
	if resp, _ := b.do("GET", "/clusters", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("forged session cookie: %d", resp.StatusCode)
	}
	// htmx polls are told where to go instead of being redirected.
	if resp, _ := b.do("GET", "/jobs/1/progress", nil, map[string]string{"HX-Request": "true"}); resp.StatusCode != http.StatusUnauthorized ||
		!strings.HasPrefix(resp.Header.Get("HX-Redirect"), "/login") {
		t.Errorf("htmx poll without session: %d %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}
	// Static assets are public (the login page needs them).
	if resp, body := b.do("GET", "/static/htmx.min.js", nil, nil); resp.StatusCode != 200 || !strings.Contains(body, "htmx.org 2.0.4") {
		t.Errorf("htmx: %d", resp.StatusCode)
	}
}

func TestLoginCookieAndLogout(t *testing.T) {
	hs, st := newServer(t)
	b := newBrowser(t, hs.URL)
	resp, body := b.do("POST", "/login", url.Values{"name": {"root"}, "password": {"wrong-password-here"}}, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong name or password") {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	resp, _ = b.do("POST", "/login", url.Values{"name": {"root"}, "password": {testPW}, "next": {"//evil.example/x"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q (an off-site next must become /)", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()[0]
	if ck.Name != SessionCookie || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/" {
		t.Fatalf("cookie %+v", ck)
	}
	if strings.Count(ck.Value, ".") == 2 {
		t.Fatal("the cookie must not carry the JWT")
	}
	resp, page := b.do("GET", "/", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "scheduler clusters") {
		t.Fatalf("overview: %d", resp.StatusCode)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	csrf := csrfRE.FindStringSubmatch(page)[1]
	if resp, _ := b.do("POST", "/logout", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	// The old cookie value is dead server-side even if a copy was kept.
	u, _ := url.Parse(hs.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: SessionCookie, Value: ck.Value}})
	if resp, _ := b.do("GET", "/", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout: %d", resp.StatusCode)
	}
	// Both sign-ins are in the API's audit log, from the browser's address.
	es, _ := st.AuditLog(0, 10)
	var ok, failed int
	for _, e := range es {
		if e.Action == "login" && e.OK {
			ok++
		} else if e.Action == "login" {
			failed++
		}
		if e.Action == "login" && !strings.HasPrefix(e.Remote, "127.0.0.1:") {
			t.Errorf("audit remote %q", e.Remote)
		}
	}
	if ok != 1 || failed != 1 {
		t.Fatalf("audit: %d ok, %d failed logins", ok, failed)
	}
}

func TestCSRFRefused(t *testing.T) {
	hs, st := newServer(t)
	b := newBrowser(t, hs.URL)
	csrf := b.login("alice")
	form := func(token string) url.Values {
		return url.Values{"csrf": {token}, "name": {"c1"}, "idcs": {"idc-a"}}
	}
	cases := []struct {
		name   string
		form   url.Values
		hdr    map[string]string
		status int
	}{
		{"no token", url.Values{"name": {"c1"}}, nil, http.StatusForbidden},
		{"wrong token", form("x" + csrf[1:]), nil, http.StatusForbidden},
		{"cross-site fetch", form(csrf), map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"foreign origin", form(csrf), map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"right token in header", url.Values{"name": {"c1"}}, map[string]string{CSRFHeader: csrf}, http.StatusSeeOther},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := b.do("POST", "/clusters", tc.form, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			_, err := st.Cluster("c1")
			if created := err == nil; created != (tc.status == http.StatusSeeOther) {
				t.Fatalf("cluster created = %v", created)
			}
		})
	}
	// Another session's token does not work either.
	other := newBrowser(t, hs.URL)
	otherCSRF := other.login("alice")
	if resp, _ := b.do("POST", "/clusters", form(otherCSRF), nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("other session's token: %d", resp.StatusCode)
	}
}

func TestGuestReadsOnly(t *testing.T) {
	hs, st := newServer(t)
	if err := st.PutCluster(store.Cluster{Name: "eu", Scopes: store.Scopes{IDCs: []string{"a"}}}, true); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, hs.URL)
	csrf := b.login("guest")
	for _, p := range []string{"/clusters", "/clusters/eu", "/jobs", "/applications", "/nodes", "/tokens"} {
		resp, body := b.do("GET", p, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
		if p != "/tokens" && strings.Contains(body, `method="post" action="/`+strings.Split(p, "/")[1]) {
			t.Errorf("GET %s shows a guest a form", p)
		}
	}
	for _, p := range []string{"/users", "/audit"} {
		if resp, _ := b.do("GET", p, nil, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("guest GET %s: %d, want 403 as in the API", p, resp.StatusCode)
		}
	}
	posts := []struct {
		path string
		form url.Values
	}{
		{"/clusters", url.Values{"name": {"c2"}}},
		{"/clusters/eu", url.Values{"idcs": {"b"}}},
		{"/clusters/eu/delete", url.Values{}},
		{"/jobs", url.Values{"kind": {"urls"}, "urls": {"https://example.com/x"}}},
		{"/applications", url.Values{"name": {"a"}, "priority": {"1"}, "url_patterns": {"x"}}},
		{"/users", url.Values{"name": {"bob"}, "role": {"root"}, "password": {testPW}}},
		{"/nodes/schedulers/x/delete", url.Values{}},
	}
	for _, p := range posts {
		p.form.Set("csrf", csrf)
		if resp, _ := b.do("POST", p.path, p.form, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("guest POST %s: %d, want 403", p.path, resp.StatusCode)
		}
	}
	if c, _ := st.Cluster("eu"); len(c.Scopes.IDCs) != 1 || c.Scopes.IDCs[0] != "a" {
		t.Fatalf("guest changed the cluster: %+v", c)
	}
	if cs, _ := st.Clusters(); len(cs) != 1 {
		t.Fatalf("clusters: %d", len(cs))
	}
	// An admin is not root: users are read-only for it.
	a := newBrowser(t, hs.URL)
	acsrf := a.login("alice")
	if _, body := a.do("GET", "/users", nil, nil); strings.Contains(body, `action="/users"`) {
		t.Error("admin sees the new-user form")
	}
	if resp, _ := a.do("POST", "/users", url.Values{"csrf": {acsrf}, "name": {"bob"}, "role": {"admin"}, "password": {testPW}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("admin creates a user: %d", resp.StatusCode)
	}
}

func TestBadInputShowsErrors(t *testing.T) {
	hs, st := newServer(t)
	b := newBrowser(t, hs.URL)
	csrf := b.login("root")
	cases := []struct {
		name, path string
		form       url.Values
		status     int
		want       []string // in the re-rendered page
	}{
		{"cluster name", "/clusters", url.Values{"name": {"Bad Name"}, "description": {"kept <b>"}}, 400,
			[]string{"cluster name &#34;Bad Name&#34;", "kept &lt;b&gt;"}},
		{"cluster cidr", "/clusters", url.Values{"name": {"ok"}, "cidrs": {"10.0.0.0/33"}}, 400, []string{"10.0.0.0/33"}},
		{"cluster regexp", "/clusters", url.Values{"name": {"ok"}, "hostname_patterns": {"(unclosed"}}, 400, []string{"(unclosed"}},
		{"cluster config", "/clusters", url.Values{"name": {"ok"}, "config": {"[1,2]"}}, 400, []string{"node config must be a JSON object"}},
		{"preheat no executor", "/jobs", url.Values{"kind": {"urls"}, "urls": {"https://example.com/a"}}, 503, []string{"no job executor"}},
		{"preheat kind", "/jobs", url.Values{"kind": {"rm -rf"}}, 400, []string{"choose an image or a list of URLs"}},
		{"application priority", "/applications", url.Values{"name": {"app"}, "priority": {"9"}, "url_patterns": {"x"}}, 400, []string{"priority must be 0..6"}},
		{"application pattern", "/applications", url.Values{"name": {"app"}, "priority": {"1"}, "url_patterns": {"a("}}, 400, []string{"url pattern"}},
		{"weak password", "/users", url.Values{"name": {"bob"}, "role": {"guest"}, "password": {"short"}}, 400, []string{"length must be 12..72"}},
		{"bad role", "/users", url.Values{"name": {"bob"}, "role": {"god"}, "password": {testPW}}, 400, []string{"role must be root, admin or guest"}},
		{"token scope", "/tokens", url.Values{"name": {"t"}, "expires_in": {"24h"}}, 400, []string{"scopes must not be empty"}},
		{"token lifetime", "/tokens", url.Values{"name": {"t"}, "expires_in": {"99999h"}, "scopes": {"read"}}, 400, []string{"expires_in"}},
		{"password mismatch", "/account/password", url.Values{"old_password": {testPW}, "new_password": {"another-long-pass"}, "confirm_password": {"different-long-pass"}}, 400, []string{"The new passwords differ"}},
		{"root demotes itself", "/users/root", url.Values{"role": {"guest"}}, 400, []string{"root may not demote or disable itself"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("csrf", csrf)
			resp, body := b.do("POST", tc.path, tc.form, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
		})
	}
	if cs, _ := st.Clusters(); len(cs) != 0 {
		t.Fatalf("a refused cluster was stored: %+v", cs)
	}
	if u, _ := st.User("root"); u.Role != store.RoleRoot {
		t.Fatal("root demoted")
	}
}

func TestFormsDoWhatTheySay(t *testing.T) {
	hs, st := newServer(t)
	b := newBrowser(t, hs.URL)
	csrf := b.login("root")
	post := func(path string, f url.Values) (*http.Response, string) {
		f.Set("csrf", csrf)
		return b.do("POST", path, f, nil)
	}
	resp, _ := post("/clusters", url.Values{"name": {"eu-west"}, "idcs": {"idc-a, idc-b"}, "location": {"eu|ie"},
		"cidrs": {"10.1.0.0/16\n10.2.0.0/16"}, "hostname_patterns": {`^gpu-\d+,x$`}, "default": {"on"}, "config": {`{"rate":"1G"}`}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/clusters/eu-west" {
		t.Fatalf("create: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	c, err := st.Cluster("eu-west")
	if err != nil || len(c.Scopes.IDCs) != 2 || len(c.Scopes.CIDRs) != 2 || c.Scopes.HostnamePatterns[0] != `^gpu-\d+,x$` ||
		!c.Default || c.Config["rate"] != "1G" || c.Scopes.Location != "eu|ie" {
		t.Fatalf("stored %+v %v", c, err)
	}
	if _, page := b.do("GET", "/clusters/eu-west", nil, nil); !strings.Contains(page, "Cluster eu-west created.") {
		t.Error("no flash after create")
	}
	if resp, _ := post("/clusters/eu-west", url.Values{"idcs": {"idc-c"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("update: %d", resp.StatusCode)
	}
	if c, _ := st.Cluster("eu-west"); len(c.Scopes.IDCs) != 1 || c.Default {
		t.Fatalf("after update %+v", c)
	}
	// Token: the secret is shown on the next page and never again.
	if resp, _ := post("/tokens", url.Values{"name": {"ci"}, "expires_in": {"24h"}, "scopes": {"read", "jobs"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("token: %d", resp.StatusCode)
	}
	_, page := b.do("GET", "/tokens", nil, nil)
	secret := regexp.MustCompile(`dfm_[A-Za-z0-9_-]+`).FindString(page)
	if secret == "" {
		t.Fatal("token secret not shown")
	}
	if _, again := b.do("GET", "/tokens", nil, nil); strings.Contains(again, secret) {
		t.Fatal("token secret shown twice")
	}
	req, _ := http.NewRequest("GET", hs.URL+"/api/v1/clusters", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 200 {
		t.Fatalf("the shown token does not work: %v", err)
	}
	// Users: create, then disable.
	if resp, body := post("/users", url.Values{"name": {"bob"}, "role": {"guest"}, "password": {testPW}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("user: %d %s", resp.StatusCode, body)
	}
	if resp, _ := post("/users/bob", url.Values{"role": {"admin"}, "disabled": {"on"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("patch: %d", resp.StatusCode)
	}
	if u, _ := st.User("bob"); u.Role != store.RoleAdmin || !u.Disabled {
		t.Fatalf("bob %+v", u)
	}
	// Application.
	if resp, _ := post("/applications", url.Values{"name": {"models"}, "priority": {"5"}, "url_patterns": {"^https://m/\n^https://n/"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("application: %d", resp.StatusCode)
	}
	if a, _ := st.Application("models"); a.Priority != 5 || len(a.URLPatterns) != 2 {
		t.Fatalf("app %+v", a)
	}
	// Password change keeps the session (the console signs in again).
	if resp, body := post("/account/password", url.Values{"old_password": {testPW}, "new_password": {"the-new-password-1"}, "confirm_password": {"the-new-password-1"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("password: %d %s", resp.StatusCode, body)
	}
	if resp, _ := b.do("GET", "/tokens", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("session lost after password change: %d", resp.StatusCode)
	}
	// Every change is in the audit log page.
	_, audit := b.do("GET", "/audit", nil, nil)
	for _, a := range []string{"cluster.create", "cluster.update", "token.create", "user.create", "user.update", "application.put", "user.password"} {
		if !strings.Contains(audit, a) {
			t.Errorf("audit page lacks %s", a)
		}
	}
	// Delete.
	if resp, _ := post("/clusters/eu-west/delete", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if _, err := st.Cluster("eu-west"); err == nil {
		t.Fatal("not deleted")
	}
}

func TestSessionsBounded(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := &sessions{max: 3, now: func() time.Time { return now }, m: map[[32]byte]*session{}}
	first, _ := s.add("t0", now.Add(time.Minute))
	for i := range 5 {
		s.add("t", now.Add(time.Duration(i+2)*time.Minute))
	}
	if n := s.len(); n != 3 {
		t.Fatalf("%d sessions, want 3", n)
	}
	if _, ok := s.get(first); ok {
		t.Fatal("the session closest to expiry should have been dropped")
	}
	id, _ := s.add("t", now.Add(time.Second))
	now = now.Add(2 * time.Second)
	if _, ok := s.get(id); ok {
		t.Fatal("expired session still valid")
	}
	if _, ok := s.get(strings.Repeat("a", 200)); ok {
		t.Fatal("oversized id")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"": "/", "/jobs/3": "/jobs/3", "//evil.example": "/", "https://evil.example/": "/", "/\\evil": "/",
		"jobs": "/", "/x\r\nSet-Cookie: a": "/", "/clusters?page=2": "/clusters?page=2",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChartBuckets(t *testing.T) {
	now := time.Date(2026, 1, 2, 10, 30, 0, 0, time.UTC)
	js := []store.Job{
		{Type: store.JobPreheat, UpdatedAt: now.Add(-10 * time.Minute), Progress: []store.BlobProgress{{Done: 3 << 20}, {Done: 1 << 20}}},
		{Type: store.JobPreheat, UpdatedAt: now.Add(-5 * time.Hour), Progress: []store.BlobProgress{{Done: 1 << 20}}},
		{Type: store.JobPreheat, UpdatedAt: now.Add(-30 * time.Hour), Progress: []store.BlobProgress{{Done: 1 << 30}}}, // too old
		{Type: store.JobGetTask, UpdatedAt: now, Progress: []store.BlobProgress{{Done: 1 << 30}}},                      // not traffic
	}
	c := preheatChart(now, js)
	if len(c.Bars) != 24 || c.Max != 4<<20 || c.Empty {
		t.Fatalf("bars %d max %d", len(c.Bars), c.Max)
	}
	last, fifth := c.Bars[23], c.Bars[18]
	if last.H <= fifth.H || fifth.H == 0 || c.Bars[0].H != 0 {
		t.Fatalf("heights: last %d, -5h %d, first %d", last.H, fifth.H, c.Bars[0].H)
	}
	if !strings.Contains(last.Title, "4.0 MiB") {
		t.Fatalf("title %q", last.Title)
	}
}

func TestSessionEndsWhenUserDisabled(t *testing.T) {
	hs, st := newServer(t)
	b := newBrowser(t, hs.URL)
	b.login("alice")
	if resp, _ := b.do("GET", "/clusters", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("before: %d", resp.StatusCode)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second))) // tokens carry whole seconds
	if err := st.UpdateUser("alice", func(u *store.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if resp, _ := b.do("GET", "/clusters", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a disabled user's session still works: %d", resp.StatusCode)
	}
}

// BenchmarkOverview times the overview's live part with many jobs in the
// store ("overview"), next to the five job scans through the REST API that
// an API-only overview needs for the same figures ("api-5-scans": one per
// state plus the newest 500), in the same run.
func BenchmarkOverview(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		hs, st := newServerTB(b)
		for i := range n {
			j, err := st.CreateJob(store.Job{Type: store.JobPreheat, Args: []byte(`{"urls":["https://e.example/a"]}`), CreatedBy: "root"})
			if err != nil {
				b.Fatal(err)
			}
			_, _ = st.UpdateJob(j.ID, func(j *store.Job) error {
				j.State = []string{store.JobSucceeded, store.JobFailed}[i%2]
				j.Progress = []store.BlobProgress{{URL: "https://e.example/a", Done: 1 << 20, State: j.State}}
				return nil
			})
		}
		br := newBrowser(b, hs.URL)
		br.login("root")
		b.Run(strconv.Itoa(n)+"-jobs/overview", func(b *testing.B) {
			for b.Loop() {
				if resp, _ := br.do("GET", "/?part=live", nil, nil); resp.StatusCode != http.StatusOK {
					b.Fatal(resp.StatusCode)
				}
			}
		})
		req, _ := http.NewRequest("POST", hs.URL+"/api/v1/login", strings.NewReader(`{"name":"root","password":"`+testPW+`"}`))
		req.Header.Set("Content-Type", "application/json")
		lr, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := io.ReadAll(lr.Body)
		lr.Body.Close()
		tok := regexp.MustCompile(`"token":"([^"]+)"`).FindStringSubmatch(string(raw))
		if tok == nil {
			b.Fatalf("login: %s", raw)
		}
		hdr := map[string]string{"Authorization": "Bearer " + tok[1]}
		b.Run(strconv.Itoa(n)+"-jobs/api-5-scans", func(b *testing.B) {
			for b.Loop() {
				for _, q := range []string{"state=pending&per_page=1", "state=running&per_page=1", "state=succeeded&per_page=1", "state=failed&per_page=1", "per_page=500"} {
					if resp, _ := br.do("GET", "/api/v1/jobs?"+q, nil, hdr); resp.StatusCode != http.StatusOK {
						b.Fatal(resp.StatusCode)
					}
				}
			}
		})
	}
}

func TestJobPageShowsResultNotSecrets(t *testing.T) {
	hs, st := newServer(t)
	pre, _ := st.CreateJob(store.Job{Type: store.JobPreheat, CreatedBy: "root",
		Args: []byte(`{"image":"reg.example/app:1","username":"bot","password":"hunter2-secret","headers":{"Authorization":"Bearer xyz-secret"}}`)})
	get, _ := st.CreateJob(store.Job{Type: store.JobGetTask, CreatedBy: "root", Args: []byte(`{"url":"https://e.example/a"}`)})
	st.UpdateJob(get.ID, func(j *store.Job) error {
		j.State, j.Result = store.JobSucceeded, []byte(`{"c1":{"seed_peer_holds":true}}`)
		return nil
	})
	b := newBrowser(t, hs.URL)
	b.login("guest")
	_, page := b.do("GET", "/jobs/"+strconv.FormatUint(pre.ID, 10), nil, nil)
	if !strings.Contains(page, "reg.example/app:1") || strings.Contains(page, "hunter2") || strings.Contains(page, "xyz-secret") {
		t.Fatalf("preheat page shows a credential or lacks the image:\n%s", page)
	}
	if !strings.Contains(page, `hx-trigger="every 1s"`) {
		t.Fatal("a pending job's progress is not polled")
	}
	_, page = b.do("GET", "/jobs/"+strconv.FormatUint(get.ID, 10), nil, nil)
	if !strings.Contains(page, "seed_peer_holds") || strings.Contains(page, `hx-trigger="every 1s"`) {
		t.Fatal("get-task result missing, or a finished job still polled")
	}
	if resp, _ := b.do("GET", "/jobs/999", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown job: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/jobs/x%27", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("bad job id: %d", resp.StatusCode)
	}
}
