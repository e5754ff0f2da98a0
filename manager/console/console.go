// Package console is the manager's web console: server-rendered pages
// (html/template) with a little vendored htmx for live parts, all embedded
// with go:embed so that it works on an air-gapped cluster.
//
// The console is a client of the REST API, called in-process: logging in
// posts to /api/v1/login, and every page and form goes through the same
// route with the session's JWT as bearer token. So authentication, role and
// scope checks, validation, audit entries and metrics are exactly the
// API's; the console adds only presentation. The JWT never reaches the
// browser: the session cookie (HttpOnly, SameSite=Strict, Secure under TLS)
// carries a random session ID, and the session lives in memory (a restart
// logs everyone out). Every POST must carry the session's CSRF token (form
// field or X-CSRF-Token header) and pass net/http's cross-origin check.
package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dragonfly-p2p/df/manager/api"
	"github.com/dragonfly-p2p/df/manager/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Cookie names.
const (
	SessionCookie = "df_session"
	CSRFHeader    = "X-CSRF-Token"
	csrfField     = "csrf"
	maxFormBytes  = 1 << 20
)

// API is what the console needs of the REST API server (*api.Server).
type API interface {
	Handler() http.Handler
	AuthenticateToken(tok string) (api.Principal, error)
	Routes() []api.Route
	Store() *store.Store // read-only use: overview statistics in one pass
}

// Console serves the web console.
type Console struct {
	api      API
	log      *slog.Logger
	now      func() time.Time
	pages    map[string]*template.Template
	mux      *http.ServeMux
	sessions *sessions
	cop      *http.CrossOriginProtection
	minRole  map[string]store.Role // "METHOD /api/v1/path" -> role, from the API's route table
}

// Option configures a Console.
type Option func(*Console)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *Console) { c.log = l } }

// WithClock sets the clock.
func WithClock(now func() time.Time) Option { return func(c *Console) { c.now = now } }

// WithMaxSessions bounds the number of sessions kept in memory (default 10,000).
func WithMaxSessions(n int) Option { return func(c *Console) { c.sessions.max = n } }

// New returns the console for the API server a.
func New(a API, opts ...Option) (*Console, error) {
	c := &Console{api: a, log: slog.New(slog.DiscardHandler), now: time.Now, minRole: map[string]store.Role{},
		cop: http.NewCrossOriginProtection()}
	c.sessions = &sessions{max: 10_000, m: map[[32]byte]*session{}}
	for _, o := range opts {
		o(c)
	}
	c.sessions.now = c.now
	for _, rt := range a.Routes() {
		c.minRole[rt.Method+" "+rt.Path] = rt.MinRole
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	c.routes()
	return c, nil
}

// Mount adapts New to manager.WithConsole; it panics only if the embedded
// templates do not parse, which the package tests rule out.
func Mount(opts ...Option) func(*api.Server) http.Handler {
	return func(s *api.Server) http.Handler {
		c, err := New(s, opts...)
		if err != nil {
			panic(err)
		}
		return c
	}
}

// ServeHTTP serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if err := c.cop.Check(r); err != nil {
		c.errorPage(w, r, nil, http.StatusForbidden, "Cross-origin request refused", "This form was posted from another site. Reload the console and try again.")
		return
	}
	c.mux.ServeHTTP(w, r)
}

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(static)
	m.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})))
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("POST /login", c.loginPost)
	m.HandleFunc("POST /logout", c.authed("", c.logout))
	m.HandleFunc("GET /{$}", c.authed("", c.overview))

	m.HandleFunc("GET /clusters", c.authed("GET /api/v1/clusters", c.clusters))
	m.HandleFunc("POST /clusters", c.authed("POST /api/v1/clusters", c.clusterCreate))
	m.HandleFunc("GET /clusters/{name}", c.authed("GET /api/v1/clusters/{name}", c.clusterEdit))
	m.HandleFunc("POST /clusters/{name}", c.authed("PUT /api/v1/clusters/{name}", c.clusterUpdate))
	m.HandleFunc("POST /clusters/{name}/delete", c.authed("DELETE /api/v1/clusters/{name}", c.clusterDelete))

	m.HandleFunc("GET /nodes", c.authed("GET /api/v1/schedulers", c.nodes))
	m.HandleFunc("POST /nodes/{kind}/{id}/delete", c.authed("DELETE /api/v1/schedulers/{id}", c.nodeDelete))

	m.HandleFunc("GET /jobs", c.authed("GET /api/v1/jobs", c.jobs))
	m.HandleFunc("POST /jobs", c.authed("POST /api/v1/jobs", c.jobCreate))
	m.HandleFunc("GET /jobs/{id}", c.authed("GET /api/v1/jobs/{id}", c.job))
	m.HandleFunc("GET /jobs/{id}/progress", c.authed("GET /api/v1/jobs/{id}", c.jobProgress))

	m.HandleFunc("GET /users", c.authed("GET /api/v1/users", c.users))
	m.HandleFunc("POST /users", c.authed("POST /api/v1/users", c.userCreate))
	m.HandleFunc("POST /users/{name}", c.authed("PATCH /api/v1/users/{name}", c.userUpdate))
	m.HandleFunc("POST /users/{name}/delete", c.authed("DELETE /api/v1/users/{name}", c.userDelete))

	m.HandleFunc("GET /tokens", c.authed("GET /api/v1/tokens", c.tokens))
	m.HandleFunc("POST /tokens", c.authed("POST /api/v1/tokens", c.tokenCreate))
	m.HandleFunc("POST /tokens/{id}/delete", c.authed("DELETE /api/v1/tokens/{id}", c.tokenDelete))
	m.HandleFunc("POST /account/password", c.authed("PUT /api/v1/me/password", c.passwordChange))

	m.HandleFunc("GET /applications", c.authed("GET /api/v1/applications", c.applications))
	m.HandleFunc("POST /applications", c.authed("POST /api/v1/applications", c.applicationCreate))
	m.HandleFunc("GET /applications/{name}", c.authed("GET /api/v1/applications/{name}", c.applicationEdit))
	m.HandleFunc("POST /applications/{name}", c.authed("PUT /api/v1/applications/{name}", c.applicationUpdate))
	m.HandleFunc("POST /applications/{name}/delete", c.authed("DELETE /api/v1/applications/{name}", c.applicationDelete))

	m.HandleFunc("GET /audit", c.authed("GET /api/v1/audit", c.audit))
	m.HandleFunc("/", c.authed("", func(w http.ResponseWriter, r *http.Request, v *visit) {
		c.errorPage(w, r, v, http.StatusNotFound, "Not found", "There is no console page at "+r.URL.Path+".")
	}))
	c.mux = m
}

// --- sessions ---

type session struct {
	token   string // the API session JWT
	csrf    string
	expires time.Time
	flash   string
	secret  string // a token secret to show once
}

type sessions struct {
	mu  sync.Mutex
	max int
	now func() time.Time
	m   map[[32]byte]*session // keyed by SHA-256 of the cookie value
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// add stores a session and returns its cookie value. When full it drops
// expired sessions, then the one closest to expiry.
func (s *sessions) add(token string, expires time.Time) (string, *session) {
	id := randomID()
	se := &session{token: token, csrf: randomID(), expires: expires}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		now := s.now()
		var oldest [32]byte
		var first = true
		for k, v := range s.m {
			if !now.Before(v.expires) {
				delete(s.m, k)
				continue
			}
			if first || v.expires.Before(s.m[oldest].expires) {
				oldest, first = k, false
			}
		}
		if len(s.m) >= s.max && !first {
			delete(s.m, oldest)
		}
	}
	s.m[sha256.Sum256([]byte(id))] = se
	return id, se
}

func (s *sessions) get(id string) (*session, bool) {
	if id == "" || len(id) > 128 {
		return nil, false
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[k]
	if ok && !s.now().Before(se.expires) {
		delete(s.m, k)
		return nil, false
	}
	return se, ok
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}

func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// takeFlash returns and clears the session's one-shot message and secret.
func (s *sessions) takeFlash(se *session) (flash, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	flash, secret = se.flash, se.secret
	se.flash, se.secret = "", ""
	return flash, secret
}

func (s *sessions) setFlash(se *session, flash, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se.flash, se.secret = flash, secret
}

// visit is one authenticated request.
type visit struct {
	id   string
	sess *session
	p    api.Principal
}

// authed requires a session; route names the API route whose role the
// page needs ("" = any user). POSTs also need the session's CSRF token.
func (c *Console) authed(route string, h func(http.ResponseWriter, *http.Request, *visit)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		v, ok := c.visitor(r)
		if !ok {
			c.toLogin(w, r)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				c.errorPage(w, r, v, http.StatusBadRequest, "Bad form", "The form could not be read: "+err.Error())
				return
			}
			got := r.Header.Get(CSRFHeader)
			if got == "" {
				got = r.PostForm.Get(csrfField)
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(v.sess.csrf)) != 1 {
				c.errorPage(w, r, v, http.StatusForbidden, "Form expired", "The form's security token is missing or stale. Reload the page and submit it again.")
				return
			}
		}
		if route != "" {
			need, ok := c.minRole[route]
			if !ok {
				c.log.Error("console: unknown API route", "route", route)
				c.errorPage(w, r, v, http.StatusInternalServerError, "Internal error", "This page is misconfigured.")
				return
			}
			if !v.p.Role.AtLeast(need) {
				c.errorPage(w, r, v, http.StatusForbidden, "Not allowed", fmt.Sprintf("Your role (%s) may not do this; it needs %s.", v.p.Role, need))
				return
			}
		}
		h(w, r, v)
	}
}

func (c *Console) visitor(r *http.Request) (*visit, bool) {
	ck, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, false
	}
	se, ok := c.sessions.get(ck.Value)
	if !ok {
		return nil, false
	}
	p, err := c.api.AuthenticateToken(se.token)
	if err != nil { // user disabled, deleted, password changed, key rotated
		c.sessions.drop(ck.Value)
		return nil, false
	}
	return &visit{id: ck.Value, sess: se, p: p}, true
}

// toLogin sends an anonymous visitor to the login page, remembering where
// a GET was going.
func (c *Console) toLogin(w http.ResponseWriter, r *http.Request) {
	target := "/login"
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	if r.Header.Get("HX-Request") == "true" {
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet {
		c.errorPage(w, r, nil, http.StatusUnauthorized, "Signed out", "Your session has ended. Sign in again.")
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// safeNext keeps only same-site absolute paths (no scheme, no //host, no backslashes).
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") || len(next) > 512 {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, value string, expires time.Time) {
	ck := &http.Cookie{Name: SessionCookie, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.Expires = expires
	}
	http.SetCookie(w, ck)
}

// redirect answers a successful POST (303, or HX-Redirect for htmx) and
// leaves a message for the next page.
func (c *Console) redirect(w http.ResponseWriter, r *http.Request, v *visit, to, flash string) {
	if v != nil && flash != "" {
		c.sessions.setFlash(v.sess, flash, "")
	}
	if r.Header.Get("HX-Request") == "true" {
		w.Header().Set("HX-Redirect", to)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

var errTemplate = errors.New("console: template")
