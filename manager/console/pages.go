package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dragonfly-p2p/df/manager/api"
	"github.com/dragonfly-p2p/df/manager/jobs"
	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/manager/telemetry"
)

// --- login ---

type loginData struct {
	Next string
	Name string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	next := safeNext(r.URL.Query().Get("next"))
	if _, ok := c.visitor(r); ok {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, nil, "login", "", view{Title: "Sign in", Data: loginData{Next: next}})
}

func (c *Console) loginPost(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.render(w, r, http.StatusBadRequest, nil, "login", "", view{Title: "Sign in", Error: "The form could not be read."})
		return
	}
	name, pw := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	var resp api.LoginResponse
	err := c.call(r.Context(), r.RemoteAddr, "", http.MethodPost, "/api/v1/login", map[string]string{"name": name, "password": pw}, &resp)
	if err != nil {
		status, msg := http.StatusUnauthorized, "Wrong name or password."
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests {
			status, msg = ae.Status, "Too many failed sign-ins for this name: wait a minute and try again."
		} else if !errors.As(err, &ae) {
			c.log.Error("console: login", "err", err)
			status, msg = http.StatusInternalServerError, "The manager could not sign you in; see its log."
		}
		c.render(w, r, status, nil, "login", "", view{Title: "Sign in", Error: msg, Data: loginData{Next: next, Name: name}})
		return
	}
	if old, err := r.Cookie(SessionCookie); err == nil {
		c.sessions.drop(old.Value) // a new sign-in never keeps an old session ID
	}
	id, _ := c.sessions.add(resp.Token, resp.ExpiresAt)
	c.setCookie(w, r, id, resp.ExpiresAt)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, v *visit) {
	c.sessions.drop(v.id)
	c.setCookie(w, r, "", time.Time{})
	c.redirect(w, r, nil, "/login", "")
}

// --- overview ---

type overviewData struct {
	Clusters, Users, Applications int
	Schedulers, SchedulersActive  int
	SeedPeers, SeedPeersActive    int
	JobsByState                   map[string]int
	BlobsDone                     int
	BytesPreheated                int64
	Chart                         chart
	Recent                        []store.Job
	JobsSampled                   int
	// From the schedulers' keepalive summaries (GET /api/v1/traffic).
	Traffic                chart
	PeerBytes, SourceBytes int64 // last 24 hours
	PeerShare              int   // percent of the bytes that came from peers
	Reporting              int   // schedulers that sent a summary recently
	Hosts, Tasks, Peers    int
}

// trafficStats fills the overview's swarm figures from the API.
func (c *Console) trafficStats(v *visit, r *http.Request, d *overviewData) {
	var t api.Traffic
	if err := c.as(v, r, http.MethodGet, "/api/v1/traffic", nil, &t); err != nil {
		d.Traffic = trafficChart(c.now(), nil)
		return
	}
	d.Traffic = trafficChart(c.now(), t.Samples)
	d.PeerBytes, d.SourceBytes = int64(min(t.PeerBytes, 1<<62)), int64(min(t.SourceBytes, 1<<62))
	d.PeerShare = pct(d.PeerBytes, d.PeerBytes+d.SourceBytes)
	d.Reporting = len(t.Schedulers)
	for _, s := range t.Schedulers {
		d.Hosts += s.HostCount
		d.Tasks += s.TaskCount
		d.Peers += s.PeerCount
	}
}

func (c *Console) total(v *visit, r *http.Request, path string) int {
	var pg api.Page[json.RawMessage]
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	if err := c.as(v, r, http.MethodGet, path+sep+"per_page=1", nil, &pg); err != nil {
		return 0
	}
	return pg.Total
}

// jobStats fills the overview's job figures in one pass over the jobs in
// the store, keeping none of them but the newest five: a manager with many
// jobs pays one decode per job and refresh, not one per figure.
func (c *Console) jobStats(d *overviewData) error {
	h := newHourly(c.now())
	_, err := c.api.Store().Jobs(func(j *store.Job) bool {
		d.JobsByState[j.State]++
		d.JobsSampled++
		for _, b := range j.Progress {
			d.BytesPreheated += b.Done
			if b.State == store.JobSucceeded {
				d.BlobsDone++
			}
		}
		h.add(j)
		i := len(d.Recent)
		for i > 0 && d.Recent[i-1].ID < j.ID {
			i--
		}
		if i < 5 {
			d.Recent = slices.Insert(d.Recent, i, *j)
			d.Recent = d.Recent[:min(len(d.Recent), 5)]
		}
		return false
	})
	d.Chart = h.chart()
	return err
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, v *visit) {
	d := overviewData{JobsByState: map[string]int{}}
	d.Clusters = c.total(v, r, "/api/v1/clusters")
	d.Applications = c.total(v, r, "/api/v1/applications")
	if v.p.Role.AtLeast(c.minRole["GET /api/v1/users"]) {
		d.Users = c.total(v, r, "/api/v1/users")
	}
	d.Schedulers = c.total(v, r, "/api/v1/schedulers")
	d.SchedulersActive = c.total(v, r, "/api/v1/schedulers?state=active")
	d.SeedPeers = c.total(v, r, "/api/v1/seed-peers")
	d.SeedPeersActive = c.total(v, r, "/api/v1/seed-peers?state=active")
	c.trafficStats(v, r, &d)
	if v.p.Role.AtLeast(c.minRole["GET /api/v1/jobs"]) {
		if err := c.jobStats(&d); err != nil {
			c.log.Error("console: job statistics", "err", err)
		}
	}
	block := ""
	if r.URL.Query().Get("part") == "live" {
		block = "live"
	}
	c.render(w, r, http.StatusOK, v, "overview", block, view{Title: "Overview", Nav: "overview", Data: d})
}

// --- clusters ---

type clusterForm struct {
	Name, Description, IDCs, Location, CIDRs, Hostnames, Config string
	Default                                                     bool
}

type clustersData struct {
	Items []store.Cluster
	Form  clusterForm
	Page  pager
}

type clusterData struct {
	Cluster    store.Cluster
	Form       clusterForm
	Schedulers []store.Instance
	SeedPeers  []store.Instance
}

// splitList splits a textarea into trimmed non-empty entries: one per line,
// and also at commas when commas is true (never for regular expressions).
func splitList(s string, commas bool) []string {
	f := func(r rune) bool { return r == '\n' || r == '\r' || (commas && r == ',') }
	var out []string
	for _, p := range strings.FieldsFunc(s, f) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func formOf(cl store.Cluster) clusterForm {
	f := clusterForm{Name: cl.Name, Description: cl.Description, IDCs: strings.Join(cl.Scopes.IDCs, "\n"),
		Location: cl.Scopes.Location, CIDRs: strings.Join(cl.Scopes.CIDRs, "\n"),
		Hostnames: strings.Join(cl.Scopes.HostnamePatterns, "\n"), Default: cl.Default}
	if len(cl.Config) > 0 {
		b, _ := json.MarshalIndent(cl.Config, "", "  ")
		f.Config = string(b)
	}
	return f
}

func readClusterForm(r *http.Request) (clusterForm, api.ClusterReq, error) {
	pf := r.PostForm
	f := clusterForm{Name: strings.TrimSpace(pf.Get("name")), Description: strings.TrimSpace(pf.Get("description")),
		IDCs: pf.Get("idcs"), Location: strings.TrimSpace(pf.Get("location")), CIDRs: pf.Get("cidrs"),
		Hostnames: pf.Get("hostname_patterns"), Config: strings.TrimSpace(pf.Get("config")), Default: pf.Get("default") == "on"}
	req := api.ClusterReq{Name: f.Name, Description: f.Description, Default: f.Default,
		Scopes: store.Scopes{IDCs: splitList(f.IDCs, true), Location: f.Location, CIDRs: splitList(f.CIDRs, true),
			HostnamePatterns: splitList(f.Hostnames, false)}}
	if f.Config != "" {
		if err := json.Unmarshal([]byte(f.Config), &req.Config); err != nil {
			return f, req, fmt.Errorf("node config must be a JSON object: %v", err)
		}
	}
	return f, req, nil
}

// formError turns an API refusal into the message shown above a form and
// the status of the re-rendered page.
func (c *Console) formError(err error) (int, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status, ae.Message
	}
	c.log.Error("console: api call", "err", err)
	return http.StatusInternalServerError, "internal error; see the manager's log"
}

func (c *Console) clusters(w http.ResponseWriter, r *http.Request, v *visit) {
	c.renderClusters(w, r, v, http.StatusOK, clusterForm{}, "")
}

func (c *Console) renderClusters(w http.ResponseWriter, r *http.Request, v *visit, status int, f clusterForm, msg string) {
	var pg api.Page[store.Cluster]
	pgr := pageOf(r)
	if err := c.as(v, r, http.MethodGet, "/api/v1/clusters?"+pgr.query(), nil, &pg); err != nil {
		status, msg = c.formError(err)
	}
	pgr.fill(pg.Total, "/clusters")
	c.render(w, r, status, v, "clusters", "", view{Title: "Clusters", Nav: "clusters", Error: msg,
		Data: clustersData{Items: pg.Items, Form: f, Page: pgr}})
}

func (c *Console) clusterCreate(w http.ResponseWriter, r *http.Request, v *visit) {
	f, req, err := readClusterForm(r)
	if err == nil {
		err = c.as(v, r, http.MethodPost, "/api/v1/clusters", req, nil)
	}
	if err != nil {
		status, msg := http.StatusBadRequest, err.Error()
		if !isLocal(err) {
			status, msg = c.formError(err)
		}
		c.renderClusters(w, r, v, status, f, msg)
		return
	}
	c.redirect(w, r, v, "/clusters/"+url.PathEscape(req.Name), "Cluster "+req.Name+" created.")
}

func isLocal(err error) bool {
	var ae *apiError
	return !errors.As(err, &ae)
}

func (c *Console) clusterEdit(w http.ResponseWriter, r *http.Request, v *visit) {
	c.renderCluster(w, r, v, http.StatusOK, nil, "")
}

func (c *Console) renderCluster(w http.ResponseWriter, r *http.Request, v *visit, status int, f *clusterForm, msg string) {
	name := r.PathValue("name")
	var d clusterData
	if err := c.as(v, r, http.MethodGet, "/api/v1/clusters/"+url.PathEscape(name), nil, &d.Cluster); err != nil {
		st, m := c.formError(err)
		c.errorPage(w, r, v, st, "Cluster "+name, m)
		return
	}
	if f != nil {
		d.Form = *f
	} else {
		d.Form = formOf(d.Cluster)
	}
	var sch, seeds api.Page[store.Instance]
	q := "?per_page=500&cluster=" + url.QueryEscape(name)
	_ = c.as(v, r, http.MethodGet, "/api/v1/schedulers"+q, nil, &sch)
	_ = c.as(v, r, http.MethodGet, "/api/v1/seed-peers"+q, nil, &seeds)
	d.Schedulers, d.SeedPeers = sch.Items, seeds.Items
	c.render(w, r, status, v, "cluster", "", view{Title: "Cluster " + name, Nav: "clusters", Error: msg, Data: d})
}

func (c *Console) clusterUpdate(w http.ResponseWriter, r *http.Request, v *visit) {
	name := r.PathValue("name")
	f, req, err := readClusterForm(r)
	f.Name, req.Name = name, name
	if err == nil {
		err = c.as(v, r, http.MethodPut, "/api/v1/clusters/"+url.PathEscape(name), req, nil)
	}
	if err != nil {
		status, msg := http.StatusBadRequest, err.Error()
		if !isLocal(err) {
			status, msg = c.formError(err)
		}
		c.renderCluster(w, r, v, status, &f, msg)
		return
	}
	c.redirect(w, r, v, "/clusters/"+url.PathEscape(name), "Cluster "+name+" saved.")
}

func (c *Console) clusterDelete(w http.ResponseWriter, r *http.Request, v *visit) {
	name := r.PathValue("name")
	if err := c.as(v, r, http.MethodDelete, "/api/v1/clusters/"+url.PathEscape(name), nil, nil); err != nil {
		st, m := c.formError(err)
		c.errorPage(w, r, v, st, "Cluster "+name+" not deleted", m)
		return
	}
	c.redirect(w, r, v, "/clusters", "Cluster "+name+" deleted.")
}

// --- nodes (schedulers and seed peers) ---

type nodesData struct {
	Schedulers, SeedPeers []store.Instance
	SchedTotal, SeedTotal int
	Hosts                 []telemetry.Host
	HostQuery             string
	HostPage              pager
	LiveURL               string
}

func (c *Console) nodes(w http.ResponseWriter, r *http.Request, v *visit) {
	var sch, seeds api.Page[store.Instance]
	if err := c.as(v, r, http.MethodGet, "/api/v1/schedulers?per_page=500", nil, &sch); err != nil {
		st, m := c.formError(err)
		c.errorPage(w, r, v, st, "Nodes", m)
		return
	}
	_ = c.as(v, r, http.MethodGet, "/api/v1/seed-peers?per_page=500", nil, &seeds)
	d := nodesData{Schedulers: sch.Items, SeedPeers: seeds.Items, SchedTotal: sch.Total, SeedTotal: seeds.Total,
		HostPage: pageOf(r)}
	d.HostQuery = strings.TrimSpace(r.URL.Query().Get("host"))
	if len(d.HostQuery) > 253 {
		d.HostQuery = d.HostQuery[:253]
	}
	var hosts api.Page[telemetry.Host]
	path := "/api/v1/hosts?" + d.HostPage.query()
	if d.HostQuery != "" {
		path += "&hostname=" + url.QueryEscape(d.HostQuery)
	}
	_ = c.as(v, r, http.MethodGet, path, nil, &hosts)
	d.Hosts = hosts.Items
	base := "/nodes"
	if d.HostQuery != "" {
		base += "?host=" + url.QueryEscape(d.HostQuery)
	}
	d.HostPage.fill(hosts.Total, base)
	d.LiveURL = fmt.Sprintf("/nodes?part=live&page=%d", d.HostPage.Page)
	if d.HostQuery != "" {
		d.LiveURL += "&host=" + url.QueryEscape(d.HostQuery)
	}
	block := ""
	if r.URL.Query().Get("part") == "live" {
		block = "live"
	}
	c.render(w, r, http.StatusOK, v, "nodes", block, view{Title: "Nodes", Nav: "nodes", Data: d})
}

func (c *Console) nodeDelete(w http.ResponseWriter, r *http.Request, v *visit) {
	kind, id := r.PathValue("kind"), r.PathValue("id")
	if kind != "schedulers" && kind != "seed-peers" {
		c.errorPage(w, r, v, http.StatusNotFound, "Not found", "No such kind of node: "+kind)
		return
	}
	if err := c.as(v, r, http.MethodDelete, "/api/v1/"+kind+"/"+url.PathEscape(id), nil, nil); err != nil {
		st, m := c.formError(err)
		c.errorPage(w, r, v, st, "Not removed", m)
		return
	}
	c.redirect(w, r, v, "/nodes", "Removed "+short(id)+"; it comes back with its next keepalive if it still runs.")
}

// --- jobs ---

type preheatForm struct {
	Kind      string // "image" or "urls"
	Image     string
	Platforms string
	Username  string
	URLs      string
	Clusters  []string
}

type jobsData struct {
	Items    []store.Job
	Clusters []store.Cluster
	Form     preheatForm
	Page     pager
	State    string
}

type jobData struct {
	Result string // get-task answer, indented JSON
	Job    store.Job
	Args   jobs.PreheatArgs
	Task   jobs.TaskArgs
	Done   int64
	Size   int64
}

func (c *Console) jobs(w http.ResponseWriter, r *http.Request, v *visit) {
	c.renderJobs(w, r, v, http.StatusOK, preheatForm{Kind: "image"}, "")
}

func (c *Console) renderJobs(w http.ResponseWriter, r *http.Request, v *visit, status int, f preheatForm, msg string) {
	pgr := pageOf(r)
	q := pgr.query()
	state := r.URL.Query().Get("state")
	switch state {
	case store.JobPending, store.JobRunning, store.JobSucceeded, store.JobFailed:
		q += "&state=" + state
	default:
		state = ""
	}
	var pg api.Page[store.Job]
	if err := c.as(v, r, http.MethodGet, "/api/v1/jobs?"+q, nil, &pg); err != nil {
		status, msg = c.formError(err)
	}
	base := "/jobs"
	if state != "" {
		base += "?state=" + state
	}
	pgr.fill(pg.Total, base)
	var cl api.Page[store.Cluster]
	_ = c.as(v, r, http.MethodGet, "/api/v1/clusters?per_page=500", nil, &cl)
	c.render(w, r, status, v, "jobs", "", view{Title: "Jobs", Nav: "jobs", Error: msg,
		Data: jobsData{Items: pg.Items, Clusters: cl.Items, Form: f, Page: pgr, State: state}})
}

func (c *Console) jobCreate(w http.ResponseWriter, r *http.Request, v *visit) {
	pf := r.PostForm
	f := preheatForm{Kind: pf.Get("kind"), Image: strings.TrimSpace(pf.Get("image")), Platforms: strings.TrimSpace(pf.Get("platforms")),
		Username: strings.TrimSpace(pf.Get("username")), URLs: pf.Get("urls"), Clusters: pf["clusters"]}
	var a jobs.PreheatArgs
	switch f.Kind {
	case "image":
		a.Image = f.Image
		a.Platforms = splitList(strings.ReplaceAll(f.Platforms, " ", ","), true)
		a.Username, a.Password = f.Username, pf.Get("password")
	case "urls":
		a.URLs = splitList(f.URLs, false)
	default:
		c.renderJobs(w, r, v, http.StatusBadRequest, f, "choose an image or a list of URLs")
		return
	}
	args, _ := json.Marshal(a)
	var j store.Job
	if err := c.as(v, r, http.MethodPost, "/api/v1/jobs", api.JobReq{Type: store.JobPreheat, Args: args, Clusters: f.Clusters}, &j); err != nil {
		st, m := c.formError(err)
		if st == http.StatusServiceUnavailable {
			m = "This manager runs no job executor, so it cannot preheat (" + m + ")."
		}
		c.renderJobs(w, r, v, st, f, m)
		return
	}
	c.redirect(w, r, v, fmt.Sprintf("/jobs/%d", j.ID), fmt.Sprintf("Preheat job %d queued.", j.ID))
}

func (c *Console) loadJob(w http.ResponseWriter, r *http.Request, v *visit) (jobData, bool) {
	var d jobData
	id := r.PathValue("id")
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		c.errorPage(w, r, v, http.StatusNotFound, "Not found", "A job ID is a number.")
		return d, false
	}
	if err := c.as(v, r, http.MethodGet, "/api/v1/jobs/"+id, nil, &d.Job); err != nil {
		st, m := c.formError(err)
		c.errorPage(w, r, v, st, "Job "+id, m)
		return d, false
	}
	switch d.Job.Type {
	case store.JobPreheat:
		_ = json.Unmarshal(d.Job.Args, &d.Args)
		d.Args.Password = "" // never shown
		d.Args.Headers = nil // may hold credentials
	default:
		_ = json.Unmarshal(d.Job.Args, &d.Task)
	}
	if len(d.Job.Result) > 0 {
		var buf bytes.Buffer
		if json.Indent(&buf, d.Job.Result, "", "  ") == nil {
			d.Result = buf.String()
		}
	}
	for _, b := range d.Job.Progress {
		d.Done += b.Done
		d.Size += b.Size
	}
	return d, true
}

func (c *Console) job(w http.ResponseWriter, r *http.Request, v *visit) {
	if d, ok := c.loadJob(w, r, v); ok {
		c.render(w, r, http.StatusOK, v, "job", "", view{Title: fmt.Sprintf("Job %d", d.Job.ID), Nav: "jobs", Data: d})
	}
}

// jobProgress is the fragment htmx polls every second; once the job is
// terminal the fragment no longer asks to be polled.
func (c *Console) jobProgress(w http.ResponseWriter, r *http.Request, v *visit) {
	if d, ok := c.loadJob(w, r, v); ok {
		c.render(w, r, http.StatusOK, v, "job", "progress", view{Data: d})
	}
}

// --- users ---

type usersData struct {
	Items []api.UserView
	Form  struct{ Name, Role string }
}

func (c *Console) users(w http.ResponseWriter, r *http.Request, v *visit) {
	c.renderUsers(w, r, v, http.StatusOK, "", "", "")
}

func (c *Console) renderUsers(w http.ResponseWriter, r *http.Request, v *visit, status int, name, role, msg string) {
	var pg api.Page[api.UserView]
	if err := c.as(v, r, http.MethodGet, "/api/v1/users?per_page=500", nil, &pg); err != nil {
		status, msg = c.formError(err)
	}
	d := usersData{Items: pg.Items}
	d.Form.Name, d.Form.Role = name, role
	c.render(w, r, status, v, "users", "", view{Title: "Users", Nav: "users", Error: msg, Data: d})
}

func (c *Console) userCreate(w http.ResponseWriter, r *http.Request, v *visit) {
	pf := r.PostForm
	name, role := strings.TrimSpace(pf.Get("name")), pf.Get("role")
	body := map[string]string{"name": name, "role": role, "password": pf.Get("password")}
	if err := c.as(v, r, http.MethodPost, "/api/v1/users", body, nil); err != nil {
		st, m := c.formError(err)
		c.renderUsers(w, r, v, st, name, role, m)
		return
	}
	c.redirect(w, r, v, "/users", "User "+name+" created.")
}

func (c *Console) userUpdate(w http.ResponseWriter, r *http.Request, v *visit) {
	name := r.PathValue("name")
	pf := r.PostForm
	body := map[string]any{"role": pf.Get("role"), "disabled": pf.Get("disabled") == "on"}
	if pw := pf.Get("password"); pw != "" {
		body["password"] = pw
	}
	if err := c.as(v, r, http.MethodPatch, "/api/v1/users/"+url.PathEscape(name), body, nil); err != nil {
		st, m := c.formError(err)
		c.renderUsers(w, r, v, st, "", "", "User "+name+": "+m)
		return
	}
	c.redirect(w, r, v, "/users", "User "+name+" saved.")
}

func (c *Console) userDelete(w http.ResponseWriter, r *http.Request, v *visit) {
	name := r.PathValue("name")
	if err := c.as(v, r, http.MethodDelete, "/api/v1/users/"+url.PathEscape(name), nil, nil); err != nil {
		st, m := c.formError(err)
		c.renderUsers(w, r, v, st, "", "", "User "+name+": "+m)
		return
	}
	c.redirect(w, r, v, "/users", "User "+name+" deleted.")
}

// --- tokens and own password ---

type tokensData struct {
	Items  []api.TokenView
	Scopes []string
	Form   struct {
		Name, ExpiresIn string
		Scopes          []string
	}
	Expires []struct{ Value, Label string }
	PwError string
}

var tokenLifetimes = []struct{ Value, Label string }{
	{"24h", "1 day"}, {"168h", "7 days"}, {"720h", "30 days"}, {"2160h", "90 days"}, {"8760h", "1 year"},
}

func (c *Console) tokens(w http.ResponseWriter, r *http.Request, v *visit) {
	c.renderTokens(w, r, v, http.StatusOK, tokensData{}, "")
}

func (c *Console) renderTokens(w http.ResponseWriter, r *http.Request, v *visit, status int, d tokensData, msg string) {
	var pg api.Page[api.TokenView]
	if err := c.as(v, r, http.MethodGet, "/api/v1/tokens?per_page=500", nil, &pg); err != nil {
		status, msg = c.formError(err)
	}
	d.Items, d.Scopes, d.Expires = pg.Items, api.AllScopes, tokenLifetimes
	if d.Form.ExpiresIn == "" {
		d.Form.ExpiresIn = "720h"
	}
	if d.Form.Scopes == nil {
		d.Form.Scopes = []string{api.ScopeRead}
	}
	c.render(w, r, status, v, "tokens", "", view{Title: "Tokens", Nav: "tokens", Error: msg, Data: d})
}

func (c *Console) tokenCreate(w http.ResponseWriter, r *http.Request, v *visit) {
	pf := r.PostForm
	var d tokensData
	d.Form.Name, d.Form.ExpiresIn, d.Form.Scopes = strings.TrimSpace(pf.Get("name")), pf.Get("expires_in"), pf["scopes"]
	var tv api.TokenView
	body := map[string]any{"name": d.Form.Name, "scopes": d.Form.Scopes, "expires_in": d.Form.ExpiresIn}
	if d.Form.Scopes == nil {
		body["scopes"] = []string{}
	}
	if err := c.as(v, r, http.MethodPost, "/api/v1/tokens", body, &tv); err != nil {
		st, m := c.formError(err)
		c.renderTokens(w, r, v, st, d, m)
		return
	}
	c.sessions.setFlash(v.sess, "Token "+tv.Name+" created. Copy it now: it is not shown again.", tv.Secret)
	c.redirect(w, r, nil, "/tokens", "")
}

func (c *Console) tokenDelete(w http.ResponseWriter, r *http.Request, v *visit) {
	id := r.PathValue("id")
	if err := c.as(v, r, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(id), nil, nil); err != nil {
		st, m := c.formError(err)
		c.renderTokens(w, r, v, st, tokensData{}, m)
		return
	}
	c.redirect(w, r, v, "/tokens", "Token "+id+" revoked.")
}

// passwordChange changes the visitor's own password; the API revokes
// sessions issued before the change, so the console signs in again with
// the new password and keeps the visitor's session.
func (c *Console) passwordChange(w http.ResponseWriter, r *http.Request, v *visit) {
	pf := r.PostForm
	old, nw := pf.Get("old_password"), pf.Get("new_password")
	if nw != pf.Get("confirm_password") {
		c.renderTokens(w, r, v, http.StatusBadRequest, tokensData{PwError: "The new passwords differ."}, "")
		return
	}
	if err := c.as(v, r, http.MethodPut, "/api/v1/me/password", map[string]string{"old_password": old, "new_password": nw}, nil); err != nil {
		_, m := c.formError(err)
		c.renderTokens(w, r, v, http.StatusBadRequest, tokensData{PwError: m}, "")
		return
	}
	var resp api.LoginResponse
	if err := c.call(r.Context(), r.RemoteAddr, "", http.MethodPost, "/api/v1/login", map[string]string{"name": v.p.User, "password": nw}, &resp); err != nil {
		c.sessions.drop(v.id)
		c.setCookie(w, r, "", time.Time{})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	c.sessions.mu.Lock()
	v.sess.token, v.sess.expires = resp.Token, resp.ExpiresAt
	c.sessions.mu.Unlock()
	c.redirect(w, r, v, "/tokens", "Password changed.")
}

// --- applications ---

type appForm struct {
	Name, Patterns string
	Priority       int
}

type appsData struct {
	Items []store.Application
	Form  appForm
}

func (c *Console) applications(w http.ResponseWriter, r *http.Request, v *visit) {
	c.renderApps(w, r, v, http.StatusOK, appForm{Priority: 3}, "")
}

func (c *Console) renderApps(w http.ResponseWriter, r *http.Request, v *visit, status int, f appForm, msg string) {
	var pg api.Page[store.Application]
	if err := c.as(v, r, http.MethodGet, "/api/v1/applications?per_page=500", nil, &pg); err != nil {
		status, msg = c.formError(err)
	}
	c.render(w, r, status, v, "applications", "", view{Title: "Applications", Nav: "applications", Error: msg,
		Data: appsData{Items: pg.Items, Form: f}})
}

func readAppForm(r *http.Request) (appForm, api.ApplicationReq) {
	pf := r.PostForm
	f := appForm{Name: strings.TrimSpace(pf.Get("name")), Patterns: pf.Get("url_patterns")}
	f.Priority, _ = strconv.Atoi(pf.Get("priority")) // out of range is refused by the API
	return f, api.ApplicationReq{Name: f.Name, URLPatterns: splitList(f.Patterns, false), Priority: f.Priority}
}

func (c *Console) applicationCreate(w http.ResponseWriter, r *http.Request, v *visit) {
	f, req := readAppForm(r)
	if err := c.as(v, r, http.MethodPost, "/api/v1/applications", req, nil); err != nil {
		st, m := c.formError(err)
		c.renderApps(w, r, v, st, f, m)
		return
	}
	c.redirect(w, r, v, "/applications", "Application "+f.Name+" created.")
}

func (c *Console) applicationEdit(w http.ResponseWriter, r *http.Request, v *visit) {
	name := r.PathValue("name")
	var a store.Application
	if err := c.as(v, r, http.MethodGet, "/api/v1/applications/"+url.PathEscape(name), nil, &a); err != nil {
		st, m := c.formError(err)
		c.errorPage(w, r, v, st, "Application "+name, m)
		return
	}
	f := appForm{Name: a.Name, Patterns: strings.Join(a.URLPatterns, "\n"), Priority: a.Priority}
	c.render(w, r, http.StatusOK, v, "application", "", view{Title: "Application " + name, Nav: "applications", Data: f})
}

func (c *Console) applicationUpdate(w http.ResponseWriter, r *http.Request, v *visit) {
	name := r.PathValue("name")
	f, req := readAppForm(r)
	f.Name, req.Name = name, name
	if err := c.as(v, r, http.MethodPut, "/api/v1/applications/"+url.PathEscape(name), req, nil); err != nil {
		st, m := c.formError(err)
		c.render(w, r, st, v, "application", "", view{Title: "Application " + name, Nav: "applications", Error: m, Data: f})
		return
	}
	c.redirect(w, r, v, "/applications", "Application "+name+" saved.")
}

func (c *Console) applicationDelete(w http.ResponseWriter, r *http.Request, v *visit) {
	name := r.PathValue("name")
	if err := c.as(v, r, http.MethodDelete, "/api/v1/applications/"+url.PathEscape(name), nil, nil); err != nil {
		st, m := c.formError(err)
		c.errorPage(w, r, v, st, "Application "+name+" not deleted", m)
		return
	}
	c.redirect(w, r, v, "/applications", "Application "+name+" deleted.")
}

// --- audit ---

type auditData struct {
	Items []store.AuditEntry
	Older uint64 // "before" for the next page, 0 = none
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, v *visit) {
	const per = 50
	q := fmt.Sprintf("/api/v1/audit?limit=%d", per)
	if b := r.URL.Query().Get("before"); b != "" {
		n, err := strconv.ParseUint(b, 10, 64)
		if err != nil {
			c.errorPage(w, r, v, http.StatusBadRequest, "Audit log", "before must be a number")
			return
		}
		q += fmt.Sprintf("&before=%d", n)
	}
	var out struct {
		Items []store.AuditEntry `json:"items"`
	}
	if err := c.as(v, r, http.MethodGet, q, nil, &out); err != nil {
		st, m := c.formError(err)
		c.errorPage(w, r, v, st, "Audit log", m)
		return
	}
	d := auditData{Items: out.Items}
	if len(out.Items) == per {
		d.Older = out.Items[len(out.Items)-1].Seq
	}
	c.render(w, r, http.StatusOK, v, "audit", "", view{Title: "Audit log", Nav: "audit", Data: d})
}

// --- paging ---

// pager is a page of a list: the ?page= of the console maps to the API's.
type pager struct {
	Page, PerPage, Total int
	Prev, Next           string
}

func pageOf(r *http.Request) pager {
	p := pager{Page: 1, PerPage: 50}
	if n, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && n >= 1 && n <= 1_000_000 {
		p.Page = n
	}
	return p
}

func (p pager) query() string { return fmt.Sprintf("page=%d&per_page=%d", p.Page, p.PerPage) }

func (p *pager) fill(total int, base string) {
	p.Total = total
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	if p.Page > 1 {
		p.Prev = fmt.Sprintf("%s%spage=%d", base, sep, p.Page-1)
	}
	if p.Page*p.PerPage < total {
		p.Next = fmt.Sprintf("%s%spage=%d", base, sep, p.Page+1)
	}
}
