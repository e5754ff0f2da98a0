package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/dragonfly-p2p/df/manager/api"
	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/manager/telemetry"
)

// view is what every page template receives.
type view struct {
	Title   string
	Nav     string // which menu entry is current
	User    api.Principal
	CSRF    string
	Flash   string
	Secret  string // token secret, shown once
	Error   string // a form error, shown above the form
	Now     time.Time
	IsAdmin bool
	IsRoot  bool
	Data    any
}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"bytes":    humanBytes,
		"ago":      ago,
		"short":    short,
		"join":     strings.Join,
		"lines":    func(s []string) string { return strings.Join(s, "\n") },
		"pct":      pct,
		"bits":     humanBits,
		"load":     uploadLoad,
		"time":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"terminal": func(state string) bool { return state == store.JobSucceeded || state == store.JobFailed },
		"seq": func(n int) []int {
			s := make([]int, n)
			for i := range s {
				s[i] = i
			}
			return s
		},
		"add":       func(a, b int) int { return a + b },
		"has":       slices.Contains[[]string],
		"roles":     func() []store.Role { return []store.Role{store.RoleGuest, store.RoleAdmin, store.RoleRoot} },
		"instances": instanceTable,
		"jobBytes": func(j store.Job) int64 {
			var n int64
			for _, b := range j.Progress {
				n += b.Done
			}
			return n
		},
	}
	base, err := template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/base.html")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errTemplate, err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "base" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", errTemplate, n, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes a full page (or, with block != "", one named block of it:
// the fragments htmx polls).
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, v *visit, page, block string, vw view) {
	t, ok := c.pages[page]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	vw.Now = c.now()
	if v != nil {
		vw.User = v.p
		vw.CSRF = v.sess.csrf
		vw.IsAdmin = v.p.Role.AtLeast(store.RoleAdmin)
		vw.IsRoot = v.p.Role == store.RoleRoot
		if block == "" {
			f, s := c.sessions.takeFlash(v.sess)
			if vw.Flash == "" {
				vw.Flash = f
			}
			if vw.Secret == "" {
				vw.Secret = s
			}
		}
	}
	if block == "" {
		block = "base"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, block, vw); err != nil {
		c.log.Error("console: render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, v *visit, status int, title, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Header.Get("HX-Request") == "true" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintln(w, title+": "+msg)
		return
	}
	c.render(w, r, status, v, "error", "", view{Title: title, Error: msg})
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// short abbreviates long IDs (peer IDs, digests) for tables; the full value
// goes in a title attribute.
func short(s string) string {
	if len(s) <= 20 {
		return s
	}
	return s[:10] + "…" + s[len(s)-6:]
}

// humanBits formats a rate in bit/s.
func humanBits(n uint64) string {
	units := []string{"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"}
	f, i := float64(n), 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d %s", n, units[0])
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// uploadLoad is the share (0..100) of a host's upload capacity in use; -1
// when the capacity is unknown.
func uploadLoad(h telemetry.Host) int {
	if h.UploadCapacity == 0 {
		return -1
	}
	return int(min(h.UploadRate, h.UploadCapacity) * 100 / h.UploadCapacity)
}

func pct(done, size int64) int {
	if size <= 0 {
		return 0
	}
	p := int(done * 100 / size)
	return min(max(p, 0), 100)
}

// instanceTable is the data of the "instances" template: removal buttons
// only where kind names the API collection and the visitor is an admin.
func instanceTable(items []store.Instance, kind string, v view) map[string]any {
	return map[string]any{"Items": items, "Kind": kind, "Admin": kind != "" && v.IsAdmin, "CSRF": v.CSRF, "Now": v.Now,
		"Compact": kind == ""} // a cluster's own page: no cluster column
}
