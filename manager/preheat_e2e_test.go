package manager_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/dragonfly-p2p/df/manager/p2pexec"
	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/testnet"
	"github.com/dragonfly-p2p/df/testnet/shape"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// seedCluster starts a manager with cluster "c1", then n in-process nodes
// following it (node 0 a seed peer, which registers itself by keepalive),
// and waits until the manager lists the seed peer.
func seedCluster(t testing.TB, ctx context.Context, n int, opts ...testnet.Option) (*testnet.Cluster, *testnet.Manager) {
	t.Helper()
	c, err := testnet.Start(ctx, t.TempDir(), 0, append([]testnet.Option{
		testnet.WithConfig(func(i int, cfg *node.Config) { cfg.Seed = i == 0 })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	m, err := c.StartManager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop() })
	if err := m.Do(ctx, "POST", "/api/v1/clusters", map[string]any{"name": "c1", "default": true}, nil); err != nil {
		t.Fatal(err)
	}
	tok, err := m.ClusterToken(ctx, "nodes")
	if err != nil {
		t.Fatal(err)
	}
	c.UseManager(m.URL(), tok)
	for range n {
		if _, err := c.AddNode(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitSeedActive(t, ctx, m, c.Node(0))
	return c, m
}

// waitSeedActive waits until the manager lists seed as an active seed peer.
func waitSeedActive(t testing.TB, ctx context.Context, m *testnet.Manager, seed *testnet.Node) {
	t.Helper()
	for {
		var list struct {
			Items []struct{ ID, State string }
		}
		if err := m.Do(ctx, "GET", "/api/v1/seed-peers", nil, &list); err == nil {
			for _, i := range list.Items {
				if i.ID == seed.Host().ID().String() && i.State == "active" {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("the seed peer never registered with the manager")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func complete(t *testing.T, ctx context.Context, nd *testnet.Node, id protocol.TaskID) bool {
	t.Helper()
	info, err := nd.Store().Stat(ctx, id)
	return err == nil && info.Complete
}

func TestPreheatURLAndImageThroughSeedPeer(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	c, m := seedCluster(t, ctx, 2)
	origin, err := testnet.NewOrigin()
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	data := testnet.Payload(9<<20+17, 3)
	origin.Put("/files/a.bin", data, `"v1"`)
	reg, err := testnet.NewRegistry("library/app:v1", 2<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	url := origin.URL("/files/a.bin")
	j, err := m.SubmitJob(ctx, "preheat", map[string]any{"urls": []string{url}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sawProgress bool
	j, err = m.WaitJob(ctx, j.ID, func(j testnet.Job) {
		for _, p := range j.Progress {
			if p.State == "running" && p.Done > 0 {
				sawProgress = true
			}
		}
	})
	if err != nil || j.State != "succeeded" {
		t.Fatalf("url preheat: %+v %v", j, err)
	}
	_ = sawProgress // progress is reported every 200 ms at most; a fast preheat may finish before
	id, err := protocol.URLTask{URL: url}.ID()
	if err != nil {
		t.Fatal(err)
	}
	if !complete(t, ctx, c.Node(0), id) {
		t.Fatal("the seed peer does not hold the preheated URL task complete")
	}
	if complete(t, ctx, c.Node(1), id) {
		t.Fatal("a non-seed node was asked to preheat")
	}
	served := origin.BytesServed()
	// A node now gets it from the seed peer, not the origin.
	content, err := c.Node(1).Download(ctx, api.DownloadRequest{URL: url})
	got, err := testnet.Fetch(ctx, content, err)
	if err != nil || len(got) != len(data) {
		t.Fatalf("download after preheat: %d bytes, %v", len(got), err)
	}
	if origin.BytesServed() != served {
		t.Fatalf("origin served %d more bytes after the preheat", origin.BytesServed()-served)
	}

	// An image: every blob (config + layers) ends up on the seed as a content task.
	j, err = m.SubmitJob(ctx, "preheat", map[string]any{"image": reg.Host() + "/" + reg.Ref()}, []string{"c1"})
	if err != nil {
		t.Fatal(err)
	}
	if j, err = m.WaitJob(ctx, j.ID, nil); err != nil || j.State != "succeeded" {
		t.Fatalf("image preheat: %+v %v", j, err)
	}
	if len(j.Progress) != 4 {
		t.Fatalf("%d blobs in the job, want config + 3 layers", len(j.Progress))
	}
	for _, p := range j.Progress {
		d, err := protocol.ParseDigest(p.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if p.State != "succeeded" || p.Done != p.Size || !complete(t, ctx, c.Node(0), protocol.ContentTaskID(d)) {
			t.Fatalf("blob %s: %+v", p.Digest, p)
		}
	}

	// get-task says where it is cached; delete-task removes it.
	j, err = m.SubmitJob(ctx, "get_task", map[string]any{"url": url}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = m.WaitJob(ctx, j.ID, nil); err != nil || j.State != "succeeded" {
		t.Fatalf("get_task: %+v %v", j, err)
	}
	var loc map[string]p2pexec.TaskLocation
	if err := json.Unmarshal(j.Result, &loc); err != nil {
		t.Fatal(err)
	}
	if l := loc["c1"]; !l.SeedPeerHolds || l.CompletePeers < 1 || l.TaskID != id.String() {
		t.Fatalf("get_task result %s", j.Result)
	}
	j, err = m.SubmitJob(ctx, "delete_task", map[string]any{"task_id": id.String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = m.WaitJob(ctx, j.ID, nil); err != nil || j.State != "succeeded" {
		t.Fatalf("delete_task: %+v %v", j, err)
	}
	if _, err := c.Node(0).Store().Stat(ctx, id); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("seed still holds the deleted task: %v", err)
	}
}

func TestPreheatFailsCleanly(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	_, m := seedCluster(t, ctx, 1)
	origin, err := testnet.NewOrigin()
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	j, err := m.SubmitJob(ctx, "preheat", map[string]any{"urls": []string{origin.URL("/missing.bin")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = m.WaitJob(ctx, j.ID, nil); err != nil || j.State != "failed" || j.Progress[0].Error == "" {
		t.Fatalf("preheat of a missing file: %+v %v", j, err)
	}
}

// TestManagerKilledMidPreheatResumes stops the manager while a seed peer is
// downloading a slow origin's file, starts it again on the same data
// directory, and expects the job to resume on the real executor and succeed.
func TestManagerKilledMidPreheatResumes(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	c, m := seedCluster(t, ctx, 1)
	link := shape.NewLink(shape.Spec{Up: 4 << 20, Down: 4 << 20}) // 16 MiB at 4 MiB/s: about 4 s
	origin, err := testnet.NewShapedOrigin(link)
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	data := testnet.Payload(16<<20, 5)
	origin.Put("/slow.bin", data, `"slow"`)
	url := origin.URL("/slow.bin")
	j, err := m.SubmitJob(ctx, "preheat", map[string]any{"urls": []string{url}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	_, _ = m.WaitJob(wctx, j.ID, func(j testnet.Job) {
		if j.State == "running" && origin.BytesServed() >= 2<<20 {
			cancel() // the seed peer is mid-blob
		}
	})
	cancel()
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if origin.BytesServed() >= int64(len(data)) {
		t.Fatal("the preheat finished before the manager stopped: the test proves nothing")
	}
	m2, err := c.StartManager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Stop()
	done, err := m2.WaitJob(ctx, j.ID, nil)
	if err != nil || done.State != "succeeded" || done.Attempts != 2 {
		t.Fatalf("resumed job: %+v %v", done, err)
	}
	id, _ := protocol.URLTask{URL: url}.ID()
	if !complete(t, ctx, c.Node(0), id) {
		t.Fatal("the seed peer does not hold the task after the resumed preheat")
	}
}

// TestPreheatPrivateImage: a registry that wants credentials for every
// request. The manager resolves the image with the job's credentials and
// the seed peer fetches the blobs with the registry's Authorization header
// (the password itself never leaves the manager); without credentials the
// job fails cleanly.
func TestPreheatPrivateImage(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	c, m := seedCluster(t, ctx, 1)
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var blobGets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "correct-horse-battery" {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			blobGets.Add(1)
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	creds := &authn.Basic{Username: "alice", Password: "correct-horse-battery"}
	if err := crane.Push(img, host+"/private/app:v1", crane.Insecure, crane.WithAuth(creds)); err != nil {
		t.Fatal(err)
	}
	image := host + "/private/app:v1"

	j, err := m.SubmitJob(ctx, "preheat", map[string]any{"image": image}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = m.WaitJob(ctx, j.ID, nil); err != nil || j.State != "failed" {
		t.Fatalf("preheat without credentials: %+v %v", j, err)
	}

	j, err = m.SubmitJob(ctx, "preheat", map[string]any{"image": image, "username": "alice", "password": "correct-horse-battery"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = m.WaitJob(ctx, j.ID, nil); err != nil || j.State != "succeeded" {
		t.Fatalf("preheat with credentials: %+v %v", j, err)
	}
	for _, p := range j.Progress {
		d, err := protocol.ParseDigest(p.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if !complete(t, ctx, c.Node(0), protocol.ContentTaskID(d)) {
			t.Fatalf("blob %s not on the seed peer", p.Digest)
		}
	}
	if blobGets.Load() == 0 {
		t.Fatal("the seed peer fetched no blob from the private registry")
	}
}
