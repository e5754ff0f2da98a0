package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dragonfly-p2p/df/manager/store"
)

func TestGuardCheck(t *testing.T) {
	g := NewGuard([]netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")})
	cases := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1", false},
		{"127.8.8.8", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		{"::127.0.0.1", false},
		{"169.254.169.254", false},
		{"fd00:ec2::254", false},
		{"fe80::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"fc00::1", false},
		{"64:ff9b::7f00:1", false},
		{"10.9.1.1", true}, // allow-listed
		{"93.184.216.34", true},
		{"2606:4700::1", true},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			err := g.Check(netip.MustParseAddr(tc.addr))
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrForbiddenAddress)) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	g := NewGuard(nil)
	for _, u := range []string{
		"http://127.0.0.1/x", "http://localhost:8080/x", "http://[::1]/x", "http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/x", "http://192.168.0.1/x", "http://[fe80::1]/x", "ftp://example.com/x", "file:///etc/passwd",
		"http://user:pw@93.184.216.34/x", "/relative", "http://0x7f.1/x", "http://2130706433/x",
	} {
		if err := g.CheckURL(context.Background(), u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if err := g.CheckURL(context.Background(), "https://93.184.216.34/x"); err != nil {
		t.Fatalf("public address refused: %v", err)
	}
}

// TestRedirectToForbiddenRefused: an allow-listed origin redirects to the
// metadata address and to another loopback address; the dial is refused
// before any packet is sent.
func TestRedirectToForbiddenRefused(t *testing.T) {
	var target string
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	}))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	g := NewGuard([]netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(u.Hostname()), 32)})
	for _, tgt := range []string{"http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:" + u.Port() + "/", "http://10.0.0.1/"} {
		target = tgt
		resp, err := g.Client().Get(origin.URL)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("redirect to %s followed", tgt)
		}
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Fatalf("redirect to %s: %v", tgt, err)
		}
	}
	target = "file:///etc/passwd"
	if _, err := g.Client().Get(origin.URL); err == nil {
		t.Fatal("redirect to file: followed")
	}
}

type call struct{ cluster, url string }

// execFunc is an Executor built from a function (test seed peers).
type execFunc struct {
	mu    sync.Mutex
	calls []call
	fn    func(ctx context.Context, b Blob) error
}

func (e *execFunc) Preheat(ctx context.Context, cluster string, b Blob, progress func(int64)) error {
	e.mu.Lock()
	e.calls = append(e.calls, call{cluster, b.URL})
	e.mu.Unlock()
	progress(1)
	return e.fn(ctx, b)
}
func (e *execFunc) DeleteTask(ctx context.Context, cluster string, a TaskArgs) error { return nil }
func (e *execFunc) GetTask(ctx context.Context, cluster string, a TaskArgs) (any, error) {
	return map[string]any{"peers": []string{"p1"}, "task": a.TaskID}, nil
}
func (e *execFunc) urls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, c := range e.calls {
		out = append(out, c.url)
	}
	return out
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func waitJob(t *testing.T, st *store.Store, id uint64, cond func(store.Job) bool) store.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := st.Job(id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d never reached the condition: %+v", id, j)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSubmitRefusesForbiddenURLs(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "m.db"))
	defer st.Close()
	st.PutCluster(store.Cluster{Name: "c"}, true)
	q := New(st, &execFunc{}, nil, NewGuard(nil))
	for _, args := range []string{
		`{"urls":["http://127.0.0.1/a"]}`, `{"urls":["http://169.254.169.254/"]}`, `{"urls":["http://[fe80::1]/"]}`,
		`{"urls":["http://172.20.0.1/"]}`, `{"urls":[]}`, `{"urls":["https://93.184.216.34/a"],"image":"x"}`,
		`{"urls":["https://93.184.216.34/a"],"evil":1}`, `not json`,
	} {
		if _, err := q.Submit(context.Background(), store.JobPreheat, json.RawMessage(args), nil, "root"); err == nil {
			t.Errorf("%s accepted", args)
		}
	}
	for _, args := range []string{`{}`, `{"task_id":"a","url":"b"}`} {
		if _, err := q.Submit(context.Background(), store.JobDeleteTask, json.RawMessage(args), nil, "root"); !errors.Is(err, ErrInvalidArgs) {
			t.Errorf("%s: %v", args, err)
		}
	}
	if js, _ := st.Jobs(nil); len(js) != 0 {
		t.Fatalf("refused jobs stored: %d", len(js))
	}
}

// TestResumeAfterKill runs a preheat whose second blob hangs, kills the
// queue and closes the store mid-job, reopens the same bbolt file and checks
// the job resumes without redoing the first blob.
func TestResumeAfterKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	st := openStore(t, path)
	st.PutCluster(store.Cluster{Name: "c"}, true)
	started := make(chan struct{}, 1)
	hang := &execFunc{fn: func(ctx context.Context, b Blob) error {
		if strings.HasSuffix(b.URL, "/2") {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}}
	q := New(st, hang, nil, NewGuard(nil), WithPoll(10*time.Millisecond))
	args := `{"urls":["https://93.184.216.34/1","https://93.184.216.34/2","https://93.184.216.34/3"]}`
	j, err := q.Submit(context.Background(), store.JobPreheat, json.RawMessage(args), nil, "root")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- q.Run(ctx) }()
	<-started
	cancel() // the manager dies mid-job
	<-done
	st.Close()

	st = openStore(t, path)
	defer st.Close()
	killed, _ := st.Job(j.ID)
	if killed.State != store.JobRunning || killed.Progress[0].State != store.JobSucceeded || killed.Progress[1].State == store.JobSucceeded {
		t.Fatalf("after kill: %+v", killed)
	}
	var redo []string // blobs 1 and 3 may both have finished (blobs run concurrently); 2 hung
	for _, p := range killed.Progress {
		if p.State != store.JobSucceeded {
			redo = append(redo, p.URL)
		}
	}
	ok := &execFunc{fn: func(ctx context.Context, b Blob) error { return nil }}
	q = New(st, ok, nil, NewGuard(nil), WithPoll(10*time.Millisecond))
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	got := waitJob(t, st, j.ID, func(j store.Job) bool { return j.State == store.JobSucceeded })
	if got.Attempts != 2 {
		t.Fatalf("attempts %d", got.Attempts)
	}
	if u := ok.urls(); !slices.Equal(slices.Sorted(slices.Values(u)), redo) {
		t.Fatalf("resumed run fetched %v, want exactly the unfinished %v (finished blobs must not be redone)", u, redo)
	}
	for _, p := range got.Progress {
		if p.State != store.JobSucceeded {
			t.Fatalf("%+v", got.Progress)
		}
	}
}

func TestTooManyRestartsFailsCleanly(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "m.db"))
	defer st.Close()
	j, _ := st.CreateJob(store.Job{Type: store.JobPreheat, Args: []byte(`{"urls":["https://93.184.216.34/1"]}`), Clusters: []string{"c"}})
	st.UpdateJob(j.ID, func(j *store.Job) error { j.State, j.Attempts = store.JobRunning, MaxAttempts; return nil })
	q := New(st, &execFunc{}, nil, NewGuard(nil))
	if err := q.Recover(); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Job(j.ID); got.State != store.JobFailed || !strings.Contains(got.Error, "interrupted") {
		t.Fatalf("%+v", got)
	}
}

func TestBlobFailureFailsJob(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "m.db"))
	defer st.Close()
	st.PutCluster(store.Cluster{Name: "a"}, true)
	st.PutCluster(store.Cluster{Name: "b"}, true)
	ex := &execFunc{fn: func(ctx context.Context, b Blob) error {
		if strings.HasSuffix(b.URL, "/bad") {
			return errors.New("origin said 404")
		}
		return nil
	}}
	q := New(st, ex, nil, NewGuard(nil), WithPoll(10*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	j, err := q.Submit(ctx, store.JobPreheat, json.RawMessage(`{"urls":["https://93.184.216.34/ok","https://93.184.216.34/bad"]}`), nil, "root")
	if err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, st, j.ID, func(j store.Job) bool { return j.State == store.JobFailed })
	if len(got.Progress) != 4 || !strings.Contains(got.Error, "2 of 4") {
		t.Fatalf("%+v", got)
	}
	g, err := q.Submit(ctx, store.JobGetTask, json.RawMessage(`{"task_id":"t1"}`), []string{"a"}, "root")
	if err != nil {
		t.Fatal(err)
	}
	got = waitJob(t, st, g.ID, func(j store.Job) bool { return j.State == store.JobSucceeded })
	if !strings.Contains(string(got.Result), `"t1"`) {
		t.Fatalf("%s", got.Result)
	}
}

// TestImagePreheat resolves a multi-arch image from a real (in-memory)
// registry with basic-auth credentials and checks the blobs per platform.
func TestImagePreheat(t *testing.T) {
	reg := registry.New()
	authed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "bob" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "auth", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	})
	hs := httptest.NewServer(authed)
	defer hs.Close()
	host := strings.TrimPrefix(hs.URL, "http://")

	idx := mutate.IndexMediaType(empty.Index, "application/vnd.oci.image.index.v1+json")
	var imgs []v1.Image
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(1024, 2)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	ref, _ := name.ParseReference(host+"/app:1", name.Insecure)
	if err := remote.WriteIndex(ref, idx, remote.WithAuth(&authn.Basic{Username: "bob", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	g := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	r := NewImageResolver(g, true)
	all, err := r.Resolve(context.Background(), PreheatArgs{Image: host + "/app:1", Username: "bob", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 { // 2 × (config + 2 layers)
		t.Fatalf("%d blobs", len(all))
	}
	arm, err := r.Resolve(context.Background(), PreheatArgs{Image: host + "/app:1", Platforms: []string{"linux/arm64"}, Username: "bob", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := imgs[1].Layers()
	d, _ := layers[0].Digest()
	if len(arm) != 3 || !containsURL(arm, fmt.Sprintf("%s/v2/app/blobs/%s", hs.URL, d)) {
		t.Fatalf("%+v", arm)
	}
	if _, err := r.Resolve(context.Background(), PreheatArgs{Image: host + "/app:1"}); err == nil {
		t.Fatal("resolved without credentials")
	}
	// Without the allow-list the registry on loopback is refused.
	if _, err := NewImageResolver(NewGuard(nil), true).Resolve(context.Background(), PreheatArgs{Image: host + "/app:1", Username: "bob", Password: "s3cret"}); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("loopback registry: %v", err)
	}
}

func containsURL(bs []Blob, u string) bool {
	for _, b := range bs {
		if b.URL == u {
			return true
		}
	}
	return false
}

// progressExec reports many progress steps faster than the queue persists
// them, as a real download does.
type progressExec struct{ execFunc }

func (e *progressExec) Preheat(ctx context.Context, cluster string, b Blob, progress func(int64)) error {
	for i := int64(1); i <= 1000; i++ {
		progress(i * 4096)
	}
	return nil
}

func TestFinalProgressOfUnknownSizeRecorded(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "m.db"))
	defer st.Close()
	st.PutCluster(store.Cluster{Name: "c"}, true)
	q := New(st, &progressExec{}, nil, NewGuard(nil), WithPoll(10*time.Millisecond))
	j, err := q.Submit(context.Background(), store.JobPreheat, json.RawMessage(`{"urls":["https://93.184.216.34/a"]}`), nil, "root")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	got := waitJob(t, st, j.ID, func(j store.Job) bool { return j.State == store.JobSucceeded })
	if d := got.Progress[0].Done; d != 1000*4096 {
		t.Fatalf("done %d, want %d (the last progress report)", d, 1000*4096)
	}
}
