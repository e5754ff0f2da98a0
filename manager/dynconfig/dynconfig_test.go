package dynconfig

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/bcrypt"

	"github.com/dragonfly-p2p/df/manager/api"
	"github.com/dragonfly-p2p/df/manager/auth"
	"github.com/dragonfly-p2p/df/manager/searcher"
	"github.com/dragonfly-p2p/df/manager/store"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func peerID(t testing.TB) string {
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPublicKey(pub)
	return id.String()
}

func TestVersionFollowsContent(t *testing.T) {
	c := &clock{time.Unix(10_000, 0)}
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"), store.WithClock(c.now))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.PutCluster(store.Cluster{Name: "a", Default: true}, true)
	st.PutConfig(NodeConfigName, "root", map[string]any{"gc": "1h", "rate_limit": "1GiB"})
	st.PutCluster(store.Cluster{Name: "b", Scopes: store.Scopes{IDCs: []string{"x"}}, Config: map[string]any{"rate_limit": "10MiB"}}, true)
	s := New(st, WithClock(c.now), WithInstanceTTL(time.Minute), WithRefresh(time.Second))
	var versions []string
	s.OnVersion(func(v string) { versions = append(versions, v) })
	v1, _ := s.Version()
	s.Invalidate() // nothing changed: same version, no notification
	if v, _ := s.Version(); v != v1 || len(versions) != 1 {
		t.Fatalf("%s %v", v, versions)
	}
	id := peerID(t)
	st.Keepalive(store.KindSeedPeer, store.Instance{ID: id, Cluster: "b"})
	s.Invalidate()
	v2, _ := s.Version()
	if v2 == v1 {
		t.Fatal("version unchanged after a seed peer joined")
	}
	n, _ := s.Node(context.Background(), searcher.Host{IDC: "x"})
	if n.Clusters[0].Name != "b" || len(n.Clusters[0].SeedPeers) != 1 || n.Clusters[0].Config["rate_limit"] != "10MiB" || n.Clusters[0].Config["gc"] != "1h" {
		t.Fatalf("%+v", n)
	}
	// The seed peer stops sending keepalives: after the TTL (and refresh) it disappears.
	c.t = c.t.Add(2 * time.Minute)
	n, _ = s.Node(context.Background(), searcher.Host{IDC: "x"})
	if len(n.Clusters[0].SeedPeers) != 0 || n.Version == v2 {
		t.Fatalf("inactive seed peer still served: %+v", n)
	}
	if _, err := s.Scheduler(context.Background(), "nope"); err == nil {
		t.Fatal("unknown cluster answered")
	}
	sc, _ := s.Scheduler(context.Background(), "b")
	if sc.Cluster.Name != "b" {
		t.Fatalf("%+v", sc)
	}
}

// BenchmarkNodeConfigHTTP measures a node's dynconfig request through the
// real HTTP API with 10,000 registered hosts (schedulers and seed peers)
// spread over 100 scoped clusters; it reports the p99 latency.
func BenchmarkNodeConfigHTTP(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "m.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < 100; i++ {
		st.PutCluster(store.Cluster{Name: fmt.Sprintf("c%d", i), Scopes: store.Scopes{
			CIDRs: []string{fmt.Sprintf("10.%d.0.0/16", i)}, HostnamePatterns: []string{fmt.Sprintf(`^h%d-`, i)},
			IDCs: []string{fmt.Sprintf("idc%d", i)}, Location: fmt.Sprintf("cn|p%d", i)}}, true)
	}
	for i := 0; i < 10_000; i++ {
		kind := store.KindSeedPeer
		if i%50 == 0 {
			kind = store.KindScheduler
		}
		if err := st.Keepalive(kind, store.Instance{ID: peerID(b), Cluster: fmt.Sprintf("c%d", i%100), Hostname: fmt.Sprintf("h%d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	dyn := New(st, WithRefresh(time.Hour))
	key, _ := auth.NewKey()
	signer, _ := auth.NewSigner(key, time.Hour, nil)
	h, _ := auth.HashPassword("bench-password-long", bcrypt.MinCost)
	st.CreateUser(store.User{Name: "n", Role: store.RoleAdmin, PasswordHash: h})
	id, tok, hash := auth.NewPAT()
	st.CreateToken(store.Token{ID: id, Name: "n", User: "n", Hash: hash, Scopes: []string{api.ScopeCluster}, ExpiresAt: time.Now().Add(time.Hour)})
	hs := httptest.NewServer(api.New(st, signer, api.WithDynconfig(dyn)).Handler())
	defer hs.Close()
	get := func(i int) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/dynconfig/node?ip=10.%d.1.1&hostname=h%d-x&idc=idc%d", hs.URL, i%100, i%100, i%100), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
	get(0) // build the snapshot
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		get(i)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(a, c int) bool { return lat[a] < lat[c] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}
