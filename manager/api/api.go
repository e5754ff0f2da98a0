// Package api is the manager's REST API under /api/v1: JSON in and out,
// strict decoding (unknown fields are refused), bounded bodies, pagination
// and filtering on lists, one error body shape, JWT or personal-access-token
// authentication and role/scope checks declared per route. Every route is
// authenticated unless it is in the explicit public list (health, login).
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dragonfly-p2p/df/manager/auth"
	"github.com/dragonfly-p2p/df/manager/jobs"
	"github.com/dragonfly-p2p/df/manager/searcher"
	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/manager/telemetry"
)

// Token scopes. A session JWT carries every scope; a personal access token
// only the ones it was created with.
const (
	ScopeRead    = "read"    // GET on everything the role may see
	ScopeWrite   = "write"   // create/update/delete clusters, applications, configs, users
	ScopeJobs    = "jobs"    // create jobs
	ScopeCluster = "cluster" // scheduler/seed-peer keepalive and dynconfig (nodes, schedulers)
)

// AllScopes lists the valid scopes.
var AllScopes = []string{ScopeRead, ScopeWrite, ScopeJobs, ScopeCluster}

// Limits.
const (
	MaxBodyBytes   = 1 << 20
	DefaultPerPage = 50
	MaxPerPage     = 500
	MaxTokenTTL    = 365 * 24 * time.Hour
)

// Principal is an authenticated caller.
type Principal struct {
	User   string
	Role   store.Role
	Scopes map[string]bool // nil = all scopes (session)
	Token  string          // PAT id, "" for sessions
}

// Has reports whether the principal holds scope.
func (p Principal) Has(scope string) bool { return p.Scopes == nil || p.Scopes[scope] }

// JobSubmitter validates and queues a job (manager/jobs implements it).
type JobSubmitter interface {
	Submit(ctx context.Context, typ string, args json.RawMessage, clusters []string, by string) (store.Job, error)
}

// Dynconfig answers nodes and schedulers (manager/dynconfig implements it).
type Dynconfig interface {
	NodeConfig(ctx context.Context, h searcher.Host) (any, error)
	SchedulerConfig(ctx context.Context, cluster string) (any, error)
}

// Route is one registered API route.
type Route struct {
	Method  string
	Path    string // net/http pattern path, e.g. /api/v1/clusters/{name}
	Public  bool
	MinRole store.Role
	Scope   string
	h       func(w http.ResponseWriter, r *http.Request, p Principal)
}

// Server is the REST API.
type Server struct {
	st         *store.Store
	signer     *auth.Signer
	log        *slog.Logger
	cost       int
	jobs       JobSubmitter
	dyn        Dynconfig
	console    http.Handler
	now        func() time.Time
	routes     []Route
	mux        *http.ServeMux
	instTTL    time.Duration
	onChange   func(what string)
	touchMu    sync.Mutex
	lastTouch  map[string]time.Time
	loginLimit *limiter
	reg        prometheus.Registerer
	m          *metrics
	tel        *telemetry.Recorder
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithBcryptCost sets the bcrypt cost (tests lower it).
func WithBcryptCost(c int) Option { return func(s *Server) { s.cost = c } }

// WithJobs sets the job submitter.
func WithJobs(j JobSubmitter) Option { return func(s *Server) { s.jobs = j } }

// WithDynconfig sets the dynconfig service.
func WithDynconfig(d Dynconfig) Option { return func(s *Server) { s.dyn = d } }

// WithConsole mounts the web console at "/".
func WithConsole(h http.Handler) Option { return func(s *Server) { s.console = h } }

// WithClock sets the clock.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithInstanceTTL sets how long after its last keepalive an instance is active.
func WithInstanceTTL(d time.Duration) Option { return func(s *Server) { s.instTTL = d } }

// WithOnChange registers a callback run after any change that affects
// dynconfig (clusters, instances, applications, configs).
func WithOnChange(fn func(what string)) Option { return func(s *Server) { s.onChange = fn } }

// WithTelemetry sets where scheduler summaries are kept (default: a
// recorder of its own, with the instance TTL).
func WithTelemetry(t *telemetry.Recorder) Option { return func(s *Server) { s.tel = t } }

// New returns the API server. signer issues session JWTs.
func New(st *store.Store, signer *auth.Signer, opts ...Option) *Server {
	s := &Server{st: st, signer: signer, log: slog.New(slog.DiscardHandler), cost: auth.DefaultBcryptCost,
		now: time.Now, instTTL: time.Minute, lastTouch: map[string]time.Time{}}
	for _, o := range opts {
		o(s)
	}
	if s.tel == nil {
		s.tel = telemetry.New(max(s.instTTL, time.Minute))
	}
	s.loginLimit = newLimiter(10, time.Minute, s.now)
	s.m = newMetrics(s.reg)
	s.register()
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Path, s.instrument(rt.Method+" "+rt.Path, s.wrap(rt)))
	}
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, "not_found", "no such route")
	})
	if s.console != nil {
		s.mux.Handle("/", s.console)
	}
	return s
}

// Handler returns the HTTP handler: the API under /api/v1 and the console, if any, at /.
func (s *Server) Handler() http.Handler { return s.mux }

// Routes returns the registered routes (for tests and docs).
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// Telemetry returns where scheduler summaries are kept.
func (s *Server) Telemetry() *telemetry.Recorder { return s.tel }

// Store returns the store the server uses.
func (s *Server) Store() *store.Store { return s.st }

// --- errors and JSON ---

// ErrorBody is the shape of every error response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// storeErr maps a store/validation error to a response.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var ve *validationError
	switch {
	case errors.As(err, &ve):
		writeErr(w, http.StatusBadRequest, "invalid", ve.msg)
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, http.StatusNotFound, "not_found", "not found")
	case errors.Is(err, store.ErrExists):
		writeErr(w, http.StatusConflict, "conflict", "already exists")
	case errors.Is(err, searcher.ErrInvalidScope), errors.Is(err, auth.ErrWeakPassword), errors.Is(err, ErrInvalidJob),
		errors.Is(err, jobs.ErrInvalidArgs), errors.Is(err, jobs.ErrForbiddenAddress):
		writeErr(w, http.StatusBadRequest, "invalid", err.Error())
	default:
		s.log.Error("api: internal error", "err", err)
		writeErr(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// ErrInvalidJob is wrapped by job submitters for a request they refuse.
var ErrInvalidJob = errors.New("invalid job")

type validationError struct{ msg string }

func (e *validationError) Error() string { return e.msg }

func invalid(format string, a ...any) error { return &validationError{fmt.Sprintf(format, a...)} }

// decode reads exactly one JSON value into v, refusing unknown fields,
// trailing data and bodies over MaxBodyBytes.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeErr(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "body must be application/json")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErr(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body larger than %d bytes", MaxBodyBytes))
			return false
		}
		writeErr(w, http.StatusBadRequest, "bad_json", "invalid JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeErr(w, http.StatusBadRequest, "bad_json", "trailing data after JSON body")
		return false
	}
	return true
}

// --- pagination ---

// Page is a paginated list.
type Page[T any] struct {
	Items   []T `json:"items"`
	Total   int `json:"total"`
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
}

func paginate[T any](w http.ResponseWriter, r *http.Request, all []T) {
	q := r.URL.Query()
	page, per := 1, DefaultPerPage
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			writeErr(w, http.StatusBadRequest, "invalid", "page must be 1..1000000")
			return
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPerPage {
			writeErr(w, http.StatusBadRequest, "invalid", fmt.Sprintf("per_page must be 1..%d", MaxPerPage))
			return
		}
		per = n
	}
	start := min((page-1)*per, len(all))
	end := min(start+per, len(all))
	items := all[start:end]
	if items == nil {
		items = []T{}
	}
	writeJSON(w, http.StatusOK, Page[T]{Items: items, Total: len(all), Page: page, PerPage: per})
}

// --- authentication ---

// ErrUnauthenticated is returned by Authenticate for a missing or bad credential.
var ErrUnauthenticated = errors.New("unauthenticated")

// Authenticate resolves the caller of r from "Authorization: Bearer <jwt|pat>".
func (s *Server) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return Principal{}, ErrUnauthenticated
	}
	return s.AuthenticateToken(tok)
}

// AuthenticateToken resolves a bearer token (session JWT or PAT). The user
// must still exist and be enabled; the role is read from the store, so a
// demotion takes effect at once.
func (s *Server) AuthenticateToken(tok string) (Principal, error) {
	if auth.IsPAT(tok) {
		id, hash, err := auth.ParsePAT(tok)
		if err != nil {
			return Principal{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
		}
		t, err := s.st.Token(id)
		if err != nil || !auth.HashEqual(t.Hash, hash) {
			return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
		}
		if !s.now().Before(t.ExpiresAt) {
			return Principal{}, fmt.Errorf("%w: %v", ErrUnauthenticated, auth.ErrExpired)
		}
		u, err := s.st.User(t.User)
		if err != nil || u.Disabled {
			return Principal{}, fmt.Errorf("%w: user gone or disabled", ErrUnauthenticated)
		}
		s.touch(id)
		sc := map[string]bool{}
		for _, x := range t.Scopes {
			sc[x] = true
		}
		return Principal{User: u.Name, Role: u.Role, Scopes: sc, Token: id}, nil
	}
	c, err := s.signer.Verify(tok)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	u, err := s.st.User(c.Subject)
	if err != nil || u.Disabled || u.UpdatedAt.Unix() > c.IssuedAt {
		// A password/role change or disable after issue revokes the session.
		return Principal{}, fmt.Errorf("%w: session revoked", ErrUnauthenticated)
	}
	return Principal{User: u.Name, Role: u.Role}, nil
}

// touch records token use at most once a minute per token.
func (s *Server) touch(id string) {
	s.touchMu.Lock()
	last := s.lastTouch[id]
	now := s.now()
	if now.Sub(last) < time.Minute {
		s.touchMu.Unlock()
		return
	}
	s.lastTouch[id] = now
	s.touchMu.Unlock()
	_ = s.st.TouchToken(id)
}

func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.Public {
			rt.h(w, r, Principal{})
			return
		}
		p, err := s.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dragonfly-manager"`)
			writeErr(w, http.StatusUnauthorized, "unauthenticated", "missing, invalid or expired credentials")
			return
		}
		if !p.Role.AtLeast(rt.MinRole) {
			writeErr(w, http.StatusForbidden, "forbidden", fmt.Sprintf("role %s may not do this (needs %s)", p.Role, rt.MinRole))
			return
		}
		if rt.Scope != "" && !p.Has(rt.Scope) {
			writeErr(w, http.StatusForbidden, "forbidden", fmt.Sprintf("token lacks scope %q", rt.Scope))
			return
		}
		rt.h(w, r, p)
	})
}

func (s *Server) audit(r *http.Request, actor, action, target string, ok bool, detail string) {
	if err := s.st.Audit(store.AuditEntry{Actor: actor, Action: action, Target: target, Remote: r.RemoteAddr, OK: ok, Detail: detail}); err != nil {
		s.log.Error("api: audit write failed", "err", err)
	}
}

func (s *Server) changed(what string) {
	if s.onChange != nil {
		s.onChange(what)
	}
}

// EnsureRoot creates the root user with a random password when the store has
// no users, and returns that password (shown once; only its hash is kept).
func EnsureRoot(st *store.Store, cost int) (password string, created bool, err error) {
	users, err := st.Users()
	if err != nil || len(users) > 0 {
		return "", false, err
	}
	password = auth.RandomString(18)
	hash, err := auth.HashPassword(password, cost)
	if err != nil {
		return "", false, err
	}
	if err := st.CreateUser(store.User{Name: "root", Role: store.RoleRoot, PasswordHash: hash}); err != nil {
		return "", false, err
	}
	_ = st.Audit(store.AuditEntry{Actor: "manager", Action: "user.bootstrap", Target: "root", OK: true})
	return password, true, nil
}

// limiter bounds failed logins per user name within a window.
type limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	fails  map[string][]time.Time
}

func newLimiter(max int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{max: max, window: window, now: now, fails: map[string][]time.Time{}}
}

func (l *limiter) blocked(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ts := l.fails[key]
	for len(ts) > 0 && now.Sub(ts[0]) > l.window {
		ts = ts[1:]
	}
	l.fails[key] = ts
	if len(ts) == 0 {
		delete(l.fails, key)
	}
	return len(ts) >= l.max
}

func (l *limiter) fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) > 100_000 { // bound memory under a name-spraying attack
		clear(l.fails)
	}
	l.fails[key] = append(l.fails[key], l.now())
}
