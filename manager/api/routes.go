package api

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/manager/auth"
	"github.com/dragonfly-p2p/df/manager/jobs"
	"github.com/dragonfly-p2p/df/manager/searcher"
	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/manager/telemetry"
	"github.com/dragonfly-p2p/df/protocol/dynclient"
)

// PublicRoutes lists the only routes served without authentication.
var PublicRoutes = []string{"GET /api/v1/healthz", "POST /api/v1/login"}

const v1 = "/api/v1"

func (s *Server) add(method, path string, minRole store.Role, scope string, h func(http.ResponseWriter, *http.Request, Principal)) {
	public := slices.Contains(PublicRoutes, method+" "+v1+path)
	s.routes = append(s.routes, Route{Method: method, Path: v1 + path, Public: public, MinRole: minRole, Scope: scope, h: h})
}

func (s *Server) register() {
	G, A, R := store.RoleGuest, store.RoleAdmin, store.RoleRoot
	s.add("GET", "/healthz", "", "", s.health)
	s.add("POST", "/login", "", "", s.login)
	s.add("GET", "/me", G, "", s.me)
	s.add("PUT", "/me/password", G, ScopeWrite, s.changeOwnPassword)

	s.add("GET", "/users", A, ScopeRead, s.listUsers)
	s.add("POST", "/users", R, ScopeWrite, s.createUser)
	s.add("GET", "/users/{name}", A, ScopeRead, s.getUser)
	s.add("PATCH", "/users/{name}", R, ScopeWrite, s.patchUser)
	s.add("DELETE", "/users/{name}", R, ScopeWrite, s.deleteUser)

	s.add("GET", "/tokens", G, ScopeRead, s.listTokens)
	s.add("POST", "/tokens", G, ScopeWrite, s.createToken)
	s.add("DELETE", "/tokens/{id}", G, ScopeWrite, s.deleteToken)

	s.add("GET", "/clusters", G, ScopeRead, s.listClusters)
	s.add("POST", "/clusters", A, ScopeWrite, s.createCluster)
	s.add("GET", "/clusters/{name}", G, ScopeRead, s.getCluster)
	s.add("PUT", "/clusters/{name}", A, ScopeWrite, s.updateCluster)
	s.add("DELETE", "/clusters/{name}", A, ScopeWrite, s.deleteCluster)

	for _, k := range []struct {
		path string
		kind store.InstanceKind
	}{{"/schedulers", store.KindScheduler}, {"/seed-peers", store.KindSeedPeer}} {
		kind := k.kind
		s.add("GET", k.path, G, ScopeRead, func(w http.ResponseWriter, r *http.Request, p Principal) { s.listInstances(w, r, kind) })
		s.add("POST", k.path+"/keepalive", A, ScopeCluster, func(w http.ResponseWriter, r *http.Request, p Principal) { s.keepalive(w, r, kind) })
		s.add("DELETE", k.path+"/{id}", A, ScopeWrite, func(w http.ResponseWriter, r *http.Request, p Principal) { s.deleteInstance(w, r, p, kind) })
	}

	s.add("GET", "/hosts", G, ScopeRead, s.listHosts)
	s.add("GET", "/traffic", G, ScopeRead, s.traffic)

	s.add("GET", "/applications", G, ScopeRead, s.listApplications)
	s.add("POST", "/applications", A, ScopeWrite, s.createApplication)
	s.add("GET", "/applications/{name}", G, ScopeRead, s.getApplication)
	s.add("PUT", "/applications/{name}", A, ScopeWrite, s.updateApplication)
	s.add("DELETE", "/applications/{name}", A, ScopeWrite, s.deleteApplication)

	s.add("GET", "/jobs", G, ScopeRead, s.listJobs)
	s.add("POST", "/jobs", A, ScopeJobs, s.createJob)
	s.add("GET", "/jobs/{id}", G, ScopeRead, s.getJob)

	s.add("GET", "/configs/{name}", G, ScopeRead, s.getConfig)
	s.add("GET", "/configs/{name}/versions", G, ScopeRead, s.configVersions)
	s.add("PUT", "/configs/{name}", A, ScopeWrite, s.putConfig)

	s.add("GET", "/audit", A, ScopeRead, s.auditLog)

	s.add("GET", "/dynconfig/node", A, ScopeCluster, s.nodeConfig)
	s.add("GET", "/dynconfig/scheduler", A, ScopeCluster, s.schedulerConfig)
}

// Names: lower-case letters, digits, '.', '_', '-'; no leading dot/dash, no
// slashes, quotes, spaces or other characters that mean something to SQL,
// shells or paths.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func validName(kind, n string) error {
	if !nameRE.MatchString(n) || strings.Contains(n, "..") {
		return invalid("%s name %q: must match %s and contain no \"..\"", kind, n, nameRE)
	}
	return nil
}

// --- health and sessions ---

func (s *Server) health(w http.ResponseWriter, r *http.Request, _ Principal) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type loginReq struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// LoginResponse is returned by POST /login.
type LoginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Role      string    `json:"role"`
}

// Login checks a user's password and issues a session JWT.
func (s *Server) Login(name, password, remote string) (LoginResponse, error) {
	if s.loginLimit.blocked(name) {
		return LoginResponse{}, errTooMany
	}
	u, err := s.st.User(name)
	if err != nil {
		auth.BurnPasswordCheck(password)
		s.loginLimit.fail(name)
		return LoginResponse{}, ErrUnauthenticated
	}
	if err := auth.CheckPassword(u.PasswordHash, password); err != nil || u.Disabled {
		s.loginLimit.fail(name)
		return LoginResponse{}, ErrUnauthenticated
	}
	tok, c, err := s.signer.Sign(u.Name, string(u.Role))
	if err != nil {
		return LoginResponse{}, err
	}
	return LoginResponse{Token: tok, ExpiresAt: time.Unix(c.ExpiresAt, 0).UTC(), Role: string(u.Role)}, nil
}

var errTooMany = &validationError{"too many failed logins; wait a minute"}

func (s *Server) login(w http.ResponseWriter, r *http.Request, _ Principal) {
	var req loginReq
	if !decode(w, r, &req) {
		return
	}
	if len(req.Name) > 64 || len(req.Password) > auth.MaxPasswordLen {
		writeErr(w, http.StatusUnauthorized, "unauthenticated", "wrong name or password")
		return
	}
	resp, err := s.Login(req.Name, req.Password, r.RemoteAddr)
	switch {
	case err == errTooMany:
		s.m.logins.WithLabelValues("rate_limited").Inc()
		s.audit(r, req.Name, "login", req.Name, false, "rate limited")
		writeErr(w, http.StatusTooManyRequests, "rate_limited", err.Error())
	case err != nil:
		s.m.logins.WithLabelValues("failed").Inc()
		s.audit(r, req.Name, "login", req.Name, false, "")
		writeErr(w, http.StatusUnauthorized, "unauthenticated", "wrong name or password")
	default:
		s.m.logins.WithLabelValues("ok").Inc()
		s.audit(r, req.Name, "login", req.Name, true, "")
		writeJSON(w, http.StatusOK, resp)
	}
}

// UserView is a user as the API shows it (never the hash).
type UserView struct {
	Name      string     `json:"name"`
	Role      store.Role `json:"role"`
	Disabled  bool       `json:"disabled"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

func view(u store.User) UserView {
	return UserView{u.Name, u.Role, u.Disabled, u.CreatedAt, u.UpdatedAt}
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, p Principal) {
	u, err := s.st.User(p.User)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(u))
}

type passwordReq struct {
	Old string `json:"old_password"`
	New string `json:"new_password"`
}

func (s *Server) changeOwnPassword(w http.ResponseWriter, r *http.Request, p Principal) {
	var req passwordReq
	if !decode(w, r, &req) {
		return
	}
	u, err := s.st.User(p.User)
	if err != nil {
		s.fail(w, err)
		return
	}
	if auth.CheckPassword(u.PasswordHash, req.Old) != nil {
		s.audit(r, p.User, "user.password", p.User, false, "wrong old password")
		writeErr(w, http.StatusForbidden, "forbidden", "old password is wrong")
		return
	}
	hash, err := auth.HashPassword(req.New, s.cost)
	if err != nil {
		s.fail(w, err)
		return
	}
	err = s.st.UpdateUser(p.User, func(u *store.User) error { u.PasswordHash = hash; return nil })
	s.audit(r, p.User, "user.password", p.User, err == nil, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- users ---

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, _ Principal) {
	us, err := s.st.Users()
	if err != nil {
		s.fail(w, err)
		return
	}
	q := r.URL.Query()
	var out []UserView
	for _, u := range us {
		if role := q.Get("role"); role != "" && string(u.Role) != role {
			continue
		}
		if n := q.Get("name"); n != "" && !strings.Contains(u.Name, n) {
			continue
		}
		out = append(out, view(u))
	}
	paginate(w, r, out)
}

type createUserReq struct {
	Name     string     `json:"name"`
	Role     store.Role `json:"role"`
	Password string     `json:"password"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, p Principal) {
	var req createUserReq
	if !decode(w, r, &req) {
		return
	}
	if err := validName("user", req.Name); err != nil {
		s.fail(w, err)
		return
	}
	if !req.Role.Valid() {
		s.fail(w, invalid("role must be root, admin or guest"))
		return
	}
	hash, err := auth.HashPassword(req.Password, s.cost)
	if err != nil {
		s.fail(w, err)
		return
	}
	err = s.st.CreateUser(store.User{Name: req.Name, Role: req.Role, PasswordHash: hash})
	s.audit(r, p.User, "user.create", req.Name, err == nil, "role="+string(req.Role))
	if err != nil {
		s.fail(w, err)
		return
	}
	u, _ := s.st.User(req.Name)
	writeJSON(w, http.StatusCreated, view(u))
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, _ Principal) {
	u, err := s.st.User(r.PathValue("name"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(u))
}

type patchUserReq struct {
	Role     *store.Role `json:"role,omitempty"`
	Disabled *bool       `json:"disabled,omitempty"`
	Password *string     `json:"password,omitempty"`
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, p Principal) {
	name := r.PathValue("name")
	var req patchUserReq
	if !decode(w, r, &req) {
		return
	}
	if req.Role != nil && !req.Role.Valid() {
		s.fail(w, invalid("role must be root, admin or guest"))
		return
	}
	if name == p.User && ((req.Role != nil && *req.Role != store.RoleRoot) || (req.Disabled != nil && *req.Disabled)) {
		s.fail(w, invalid("root may not demote or disable itself"))
		return
	}
	var hash []byte
	if req.Password != nil {
		var err error
		if hash, err = auth.HashPassword(*req.Password, s.cost); err != nil {
			s.fail(w, err)
			return
		}
	}
	err := s.st.UpdateUser(name, func(u *store.User) error {
		if req.Role != nil {
			u.Role = *req.Role
		}
		if req.Disabled != nil {
			u.Disabled = *req.Disabled
		}
		if hash != nil {
			u.PasswordHash = hash
		}
		return nil
	})
	s.audit(r, p.User, "user.update", name, err == nil, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	u, _ := s.st.User(name)
	writeJSON(w, http.StatusOK, view(u))
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, p Principal) {
	name := r.PathValue("name")
	if name == p.User {
		s.fail(w, invalid("a user may not delete itself"))
		return
	}
	err := s.st.DeleteUser(name)
	s.audit(r, p.User, "user.delete", name, err == nil, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- tokens ---

// TokenView is a token as the API shows it; Secret only once, at creation.
type TokenView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	User      string    `json:"user"`
	Scopes    []string  `json:"scopes"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	Secret    string    `json:"token,omitempty"`
}

func tokenView(t store.Token) TokenView {
	return TokenView{ID: t.ID, Name: t.Name, User: t.User, Scopes: t.Scopes, ExpiresAt: t.ExpiresAt, CreatedAt: t.CreatedAt, LastUsed: t.LastUsed}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p Principal) {
	user := p.User
	if p.Role == store.RoleRoot {
		user = r.URL.Query().Get("user") // root may see everyone's ("" = all)
	}
	ts, err := s.st.Tokens(user)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]TokenView, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenView(t))
	}
	paginate(w, r, out)
}

type createTokenReq struct {
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	ExpiresIn string   `json:"expires_in"` // Go duration, ≤ 1 year
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p Principal) {
	var req createTokenReq
	if !decode(w, r, &req) {
		return
	}
	if err := validName("token", req.Name); err != nil {
		s.fail(w, err)
		return
	}
	d, err := time.ParseDuration(req.ExpiresIn)
	if err != nil || d <= 0 || d > MaxTokenTTL {
		s.fail(w, invalid("expires_in must be a duration in (0, %s]", MaxTokenTTL))
		return
	}
	if len(req.Scopes) == 0 {
		s.fail(w, invalid("scopes must not be empty"))
		return
	}
	for _, sc := range req.Scopes {
		if !slices.Contains(AllScopes, sc) {
			s.fail(w, invalid("unknown scope %q (valid: %s)", sc, strings.Join(AllScopes, ", ")))
			return
		}
		if !p.Has(sc) {
			writeErr(w, http.StatusForbidden, "forbidden", "a token cannot grant a scope its creator lacks")
			return
		}
	}
	id, secret, hash := auth.NewPAT()
	t := store.Token{ID: id, Name: req.Name, User: p.User, Hash: hash, Scopes: slices.Compact(slices.Sorted(slices.Values(req.Scopes))), ExpiresAt: s.now().Add(d)}
	err = s.st.CreateToken(t)
	s.audit(r, p.User, "token.create", id, err == nil, strings.Join(t.Scopes, ","))
	if err != nil {
		s.fail(w, err)
		return
	}
	t, _ = s.st.Token(id)
	v := tokenView(t)
	v.Secret = secret
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	t, err := s.st.Token(id)
	if err != nil || (t.User != p.User && p.Role != store.RoleRoot) {
		s.fail(w, store.ErrNotFound) // do not reveal others' token ids
		return
	}
	err = s.st.DeleteToken(id)
	s.audit(r, p.User, "token.delete", id, err == nil, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- clusters ---

// ClusterReq is the body of cluster create/update.
type ClusterReq struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Scopes      store.Scopes   `json:"scopes"`
	Default     bool           `json:"default"`
	Config      map[string]any `json:"config"`
}

func (s *Server) listClusters(w http.ResponseWriter, r *http.Request, _ Principal) {
	cs, err := s.st.Clusters()
	if err != nil {
		s.fail(w, err)
		return
	}
	paginate(w, r, filterByName(r, cs, func(c store.Cluster) string { return c.Name }))
}

func (s *Server) getCluster(w http.ResponseWriter, r *http.Request, _ Principal) {
	c, err := s.st.Cluster(r.PathValue("name"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) putCluster(w http.ResponseWriter, r *http.Request, p Principal, create bool) {
	var req ClusterReq
	if !decode(w, r, &req) {
		return
	}
	if !create && !s.nameFromPath(w, r, &req.Name) {
		return
	}
	if err := validName("cluster", req.Name); err != nil {
		s.fail(w, err)
		return
	}
	if len(req.Description) > 1024 {
		s.fail(w, invalid("description longer than 1024 bytes"))
		return
	}
	if err := searcher.ValidateScopes(req.Scopes); err != nil {
		s.fail(w, err)
		return
	}
	if err := ValidateNodeConfig(req.Config); err != nil {
		s.fail(w, err)
		return
	}
	c := store.Cluster{Name: req.Name, Description: req.Description, Scopes: req.Scopes, Default: req.Default, Config: req.Config}
	err := s.st.PutCluster(c, create)
	action := "cluster.update"
	if create {
		action = "cluster.create"
	}
	s.audit(r, p.User, action, req.Name, err == nil, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	s.changed("cluster")
	c, _ = s.st.Cluster(req.Name)
	status := http.StatusOK
	if create {
		status = http.StatusCreated
	}
	writeJSON(w, status, c)
}

func (s *Server) createCluster(w http.ResponseWriter, r *http.Request, p Principal) {
	s.putCluster(w, r, p, true)
}

func (s *Server) updateCluster(w http.ResponseWriter, r *http.Request, p Principal) {
	s.putCluster(w, r, p, false)
}

func (s *Server) deleteCluster(w http.ResponseWriter, r *http.Request, p Principal) {
	name := r.PathValue("name")
	err := s.st.DeleteCluster(name)
	s.audit(r, p.User, "cluster.delete", name, err == nil, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	s.changed("cluster")
	w.WriteHeader(http.StatusNoContent)
}

// --- schedulers and seed peers ---

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request, k store.InstanceKind) {
	q := r.URL.Query()
	in, err := s.st.Instances(k, q.Get("cluster"), s.instTTL)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]store.Instance, 0, len(in))
	for _, i := range in {
		if st := q.Get("state"); st != "" && i.State != st {
			continue
		}
		out = append(out, i)
	}
	paginate(w, r, out)
}

// KeepaliveReq is sent periodically by schedulers and seed peers.
type KeepaliveReq struct {
	ID       string   `json:"id"`
	Cluster  string   `json:"cluster"`
	Hostname string   `json:"hostname"`
	IP       string   `json:"ip"`
	Addrs    []string `json:"addrs"`
	IDC      string   `json:"idc"`
	Location string   `json:"location"`
	// Summary is a scheduler's swarm summary (schedulers only).
	Summary *dynclient.SchedulerSummary `json:"summary,omitempty"`
}

func (s *Server) keepalive(w http.ResponseWriter, r *http.Request, k store.InstanceKind) {
	var req KeepaliveReq
	if !decode(w, r, &req) {
		return
	}
	if _, err := peer.Decode(req.ID); err != nil {
		s.fail(w, invalid("id must be a libp2p peer ID"))
		return
	}
	if len(req.Hostname) > 253 || len(req.IP) > 64 || len(req.IDC) > 128 || len(req.Location) > 256 || len(req.Addrs) > 32 {
		s.fail(w, invalid("field too long"))
		return
	}
	for _, a := range req.Addrs {
		if len(a) > 512 {
			s.fail(w, invalid("address too long"))
			return
		}
	}
	now := s.now()
	if req.Summary != nil {
		if k != store.KindScheduler {
			s.fail(w, invalid("only schedulers send a summary"))
			return
		}
		if err := telemetry.Validate(req.Summary, now); err != nil {
			s.fail(w, invalid("summary: %s", strings.TrimPrefix(err.Error(), telemetry.ErrInvalid.Error()+": ")))
			return
		}
	}
	before, _ := s.st.Instances(k, req.Cluster, s.instTTL)
	wasActive := false
	for _, b := range before {
		if b.ID == req.ID && b.State == store.StateActive {
			wasActive = true
		}
	}
	err := s.st.Keepalive(k, store.Instance{ID: req.ID, Cluster: req.Cluster, Hostname: req.Hostname, IP: req.IP, Addrs: req.Addrs, IDC: req.IDC, Location: req.Location})
	if err != nil {
		s.fail(w, err)
		return
	}
	if !wasActive {
		s.changed("instance")
	}
	if req.Summary != nil {
		if err := s.tel.Record(req.ID, req.Cluster, req.Hostname, req.Summary, now); err != nil {
			s.fail(w, invalid("%s", err.Error()))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"state": store.StateActive})
}

func (s *Server) deleteInstance(w http.ResponseWriter, r *http.Request, p Principal, k store.InstanceKind) {
	id := r.PathValue("id")
	err := s.st.DeleteInstance(k, id)
	s.audit(r, p.User, "instance.delete", id, err == nil, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	if k == store.KindScheduler {
		s.tel.Forget(id)
	}
	s.changed("instance")
	w.WriteHeader(http.StatusNoContent)
}

// --- hosts and traffic (from scheduler summaries) ---

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request, _ Principal) {
	q := r.URL.Query()
	f := telemetry.HostFilter{Cluster: q.Get("cluster"), Scheduler: q.Get("scheduler"), IDC: q.Get("idc"),
		Type: q.Get("type"), Location: q.Get("location"), Hostname: q.Get("hostname")}
	for _, v := range []string{f.Cluster, f.Scheduler, f.IDC, f.Type, f.Location, f.Hostname} {
		if len(v) > 256 {
			s.fail(w, invalid("filter longer than 256 bytes"))
			return
		}
	}
	if f.Type != "" && f.Type != dynclient.HostTypeSeed && f.Type != dynclient.HostTypeNormal {
		s.fail(w, invalid("type must be %q or %q", dynclient.HostTypeSeed, dynclient.HostTypeNormal))
		return
	}
	paginate(w, r, s.tel.Hosts(s.now(), f))
}

// Traffic is the answer of GET /traffic.
type Traffic struct {
	IntervalSeconds int                        `json:"interval_seconds"`
	Samples         []telemetry.Sample         `json:"samples"`
	PeerBytes       uint64                     `json:"peer_bytes"`   // sum of the samples
	SourceBytes     uint64                     `json:"source_bytes"` // sum of the samples
	Schedulers      []telemetry.SchedulerState `json:"schedulers"`
}

func (s *Server) traffic(w http.ResponseWriter, r *http.Request, _ Principal) {
	n := telemetry.Minutes
	if v := r.URL.Query().Get("minutes"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 1 || m > telemetry.Minutes {
			s.fail(w, invalid("minutes must be 1..%d", telemetry.Minutes))
			return
		}
		n = m
	}
	now := s.now()
	t := Traffic{IntervalSeconds: 60, Samples: s.tel.Traffic(now, n), Schedulers: s.tel.Schedulers(now)}
	for _, x := range t.Samples {
		t.PeerBytes += x.PeerBytes
		t.SourceBytes += x.SourceBytes
	}
	writeJSON(w, http.StatusOK, t)
}

// --- applications ---

// ApplicationReq is the body of application create/update.
type ApplicationReq struct {
	Name        string   `json:"name"`
	URLPatterns []string `json:"url_patterns"`
	Priority    int      `json:"priority"`
}

func (s *Server) listApplications(w http.ResponseWriter, r *http.Request, _ Principal) {
	as, err := s.st.Applications()
	if err != nil {
		s.fail(w, err)
		return
	}
	paginate(w, r, filterByName(r, as, func(a store.Application) string { return a.Name }))
}

func (s *Server) getApplication(w http.ResponseWriter, r *http.Request, _ Principal) {
	a, err := s.st.Application(r.PathValue("name"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) putApplication(w http.ResponseWriter, r *http.Request, p Principal, create bool) {
	var req ApplicationReq
	if !decode(w, r, &req) {
		return
	}
	if !create && !s.nameFromPath(w, r, &req.Name) {
		return
	}
	if err := validName("application", req.Name); err != nil {
		s.fail(w, err)
		return
	}
	if req.Priority < 0 || req.Priority > 6 {
		s.fail(w, invalid("priority must be 0..6"))
		return
	}
	if len(req.URLPatterns) == 0 || len(req.URLPatterns) > 64 {
		s.fail(w, invalid("url_patterns must have 1..64 entries"))
		return
	}
	for _, pat := range req.URLPatterns {
		if pat == "" || len(pat) > 512 {
			s.fail(w, invalid("url pattern must be 1..512 bytes"))
			return
		}
		if _, err := regexp.Compile(pat); err != nil {
			s.fail(w, invalid("url pattern %q: %v", pat, err))
			return
		}
	}
	err := s.st.PutApplication(store.Application{Name: req.Name, URLPatterns: req.URLPatterns, Priority: req.Priority}, create)
	s.audit(r, p.User, "application.put", req.Name, err == nil, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	s.changed("application")
	a, _ := s.st.Application(req.Name)
	status := http.StatusOK
	if create {
		status = http.StatusCreated
	}
	writeJSON(w, status, a)
}

func (s *Server) createApplication(w http.ResponseWriter, r *http.Request, p Principal) {
	s.putApplication(w, r, p, true)
}

func (s *Server) updateApplication(w http.ResponseWriter, r *http.Request, p Principal) {
	s.putApplication(w, r, p, false)
}

func (s *Server) deleteApplication(w http.ResponseWriter, r *http.Request, p Principal) {
	name := r.PathValue("name")
	err := s.st.DeleteApplication(name)
	s.audit(r, p.User, "application.delete", name, err == nil, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	s.changed("application")
	w.WriteHeader(http.StatusNoContent)
}

// --- jobs ---

// JobReq is the body of POST /jobs.
type JobReq struct {
	Type     string          `json:"type"`
	Args     json.RawMessage `json:"args"`
	Clusters []string        `json:"clusters"`
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, _ Principal) {
	q := r.URL.Query()
	js, err := s.st.Jobs(func(j *store.Job) bool {
		return (q.Get("state") == "" || j.State == q.Get("state")) && (q.Get("type") == "" || j.Type == q.Get("type"))
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	if js == nil {
		js = []store.Job{}
	}
	for i := range js {
		js[i].Args = jobs.Redacted(js[i].Type, js[i].Args)
	}
	paginate(w, r, js)
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, _ Principal) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		s.fail(w, invalid("job id must be a number"))
		return
	}
	j, err := s.st.Job(id)
	if err != nil {
		s.fail(w, err)
		return
	}
	j.Args = jobs.Redacted(j.Type, j.Args)
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request, p Principal) {
	var req JobReq
	if !decode(w, r, &req) {
		return
	}
	if s.jobs == nil {
		writeErr(w, http.StatusServiceUnavailable, "unavailable", "job runner not configured")
		return
	}
	for _, c := range req.Clusters {
		if _, err := s.st.Cluster(c); err != nil {
			s.fail(w, invalid("unknown cluster %q", c))
			return
		}
	}
	j, err := s.jobs.Submit(r.Context(), req.Type, req.Args, req.Clusters, p.User)
	s.audit(r, p.User, "job.create", req.Type, err == nil, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	j.Args = jobs.Redacted(j.Type, j.Args)
	writeJSON(w, http.StatusCreated, j)
}

// --- config documents ---

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request, _ Principal) {
	var v uint64
	if q := r.URL.Query().Get("version"); q != "" {
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			s.fail(w, invalid("version must be a number"))
			return
		}
		v = n
	}
	d, err := s.st.Config(r.PathValue("name"), v)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) configVersions(w http.ResponseWriter, r *http.Request, _ Principal) {
	ds, err := s.st.ConfigVersions(r.PathValue("name"))
	if err != nil {
		s.fail(w, err)
		return
	}
	if ds == nil {
		ds = []store.ConfigDoc{}
	}
	paginate(w, r, ds)
}

// ConfigReq is the body of PUT /configs/{name}.
type ConfigReq struct {
	Data map[string]any `json:"data"`
}

func (s *Server) putConfig(w http.ResponseWriter, r *http.Request, p Principal) {
	name := r.PathValue("name")
	if err := validName("config", name); err != nil {
		s.fail(w, err)
		return
	}
	var req ConfigReq
	if !decode(w, r, &req) {
		return
	}
	if err := ValidateNodeConfig(req.Data); err != nil {
		s.fail(w, err)
		return
	}
	d, err := s.st.PutConfig(name, p.User, req.Data)
	s.audit(r, p.User, "config.put", name, err == nil, "")
	if err != nil {
		s.fail(w, err)
		return
	}
	s.changed("config")
	writeJSON(w, http.StatusOK, d)
}

// --- audit ---

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request, _ Principal) {
	q := r.URL.Query()
	var before uint64
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.fail(w, invalid("before must be a number"))
			return
		}
		before = n
	}
	limit := DefaultPerPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPerPage {
			s.fail(w, invalid("limit must be 1..%d", MaxPerPage))
			return
		}
		limit = n
	}
	es, err := s.st.AuditLog(before, limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	if es == nil {
		es = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": es})
}

// --- dynconfig ---

func (s *Server) nodeConfig(w http.ResponseWriter, r *http.Request, _ Principal) {
	if s.dyn == nil {
		writeErr(w, http.StatusServiceUnavailable, "unavailable", "dynconfig not configured")
		return
	}
	q := r.URL.Query()
	h := searcher.Host{Hostname: q.Get("hostname"), IP: q.Get("ip"), IDC: q.Get("idc"), Location: q.Get("location")}
	if len(h.Hostname) > 253 || len(h.IP) > 64 || len(h.IDC) > 128 || len(h.Location) > 256 {
		s.fail(w, invalid("field too long"))
		return
	}
	cfg, err := s.dyn.NodeConfig(r.Context(), h)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cfg)
}

func (s *Server) schedulerConfig(w http.ResponseWriter, r *http.Request, _ Principal) {
	if s.dyn == nil {
		writeErr(w, http.StatusServiceUnavailable, "unavailable", "dynconfig not configured")
		return
	}
	cfg, err := s.dyn.SchedulerConfig(r.Context(), r.URL.Query().Get("cluster"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cfg)
}

// ValidateNodeConfig bounds a free-form config document: at most 64 top-level
// keys, nesting depth 8 and 64 KiB encoded.
func ValidateNodeConfig(m map[string]any) error {
	if len(m) > 64 {
		return invalid("config has more than 64 top-level keys")
	}
	raw, err := json.Marshal(m)
	if err != nil || len(raw) > 64<<10 {
		return invalid("config larger than 64 KiB")
	}
	if depth(m, 0) > 8 {
		return invalid("config nested deeper than 8")
	}
	return nil
}

func depth(v any, d int) int {
	max := d
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if n := depth(e, d+1); n > max {
				max = n
			}
		}
	case []any:
		for _, e := range x {
			if n := depth(e, d+1); n > max {
				max = n
			}
		}
	}
	return max
}

// filterByName keeps the items whose name contains the ?name= query (all
// when it is empty).
func filterByName[T any](r *http.Request, items []T, name func(T) string) []T {
	q := r.URL.Query().Get("name")
	out := make([]T, 0, len(items))
	for _, it := range items {
		if q == "" || strings.Contains(name(it), q) {
			out = append(out, it)
		}
	}
	return out
}

// nameFromPath sets *name from the path of an update, refusing a body that
// names another object (false: the error is written).
func (s *Server) nameFromPath(w http.ResponseWriter, r *http.Request, name *string) bool {
	if *name != "" && *name != r.PathValue("name") {
		s.fail(w, invalid("name in body and path differ"))
		return false
	}
	*name = r.PathValue("name")
	return true
}
