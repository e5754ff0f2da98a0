package dynclient_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/dragonfly-p2p/df/manager/api"
	"github.com/dragonfly-p2p/df/manager/auth"
	"github.com/dragonfly-p2p/df/manager/dynconfig"
	"github.com/dragonfly-p2p/df/manager/store"
	. "github.com/dragonfly-p2p/df/protocol/dynclient"
)

// manager starts a real API server over a real store and returns its URL and
// a cluster-scoped token.
func manager(t testing.TB) (*httptest.Server, *store.Store, *dynconfig.Service, string) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dyn := dynconfig.New(st)
	key, _ := auth.NewKey()
	signer, _ := auth.NewSigner(key, time.Hour, nil)
	srv := api.New(st, signer, api.WithBcryptCost(bcrypt.MinCost), api.WithDynconfig(dyn), api.WithOnChange(func(string) { dyn.Invalidate() }))
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	h, _ := auth.HashPassword("node-password-long", bcrypt.MinCost)
	st.CreateUser(store.User{Name: "nodes", Role: store.RoleAdmin, PasswordHash: h})
	id, tok, hash := auth.NewPAT()
	if err := st.CreateToken(store.Token{ID: id, Name: "n", User: "nodes", Hash: hash, Scopes: []string{api.ScopeCluster}, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	st.PutCluster(store.Cluster{Name: "east", Scopes: store.Scopes{CIDRs: []string{"10.1.0.0/16"}}, Config: map[string]any{"rate_limit": "100MiB"}}, true)
	st.PutCluster(store.Cluster{Name: "west", Default: true}, true)
	return hs, st, dyn, tok
}

func TestPullCacheAndManagerDown(t *testing.T) {
	hs, st, dyn, tok := manager(t)
	const pid = "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"
	if err := st.Keepalive(store.KindScheduler, store.Instance{ID: pid, Cluster: "east", Hostname: "s1"}); err != nil {
		t.Fatal(err)
	}
	dyn.Invalidate()
	cache := filepath.Join(t.TempDir(), "cache", "dynconfig.json")
	url := hs.URL + "/api/v1/dynconfig/node?ip=10.1.2.3&hostname=n1"
	c := New[dynconfig.NodeConfig](url, tok, cache)
	if _, _, err := c.Current(); err != ErrNoConfig {
		t.Fatalf("before pull: %v", err)
	}
	if err := c.Pull(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg, fromCache, _ := c.Current()
	if fromCache || len(cfg.Clusters) != 1 || cfg.Clusters[0].Name != "east" || len(cfg.Clusters[0].Schedulers) != 1 || cfg.Clusters[0].Config["rate_limit"] != "100MiB" {
		t.Fatalf("%+v", cfg)
	}

	// The manager goes down: pulls fail, the client keeps its config.
	hs.Close()
	if err := c.Pull(context.Background()); err == nil {
		t.Fatal("pull from a dead manager succeeded")
	}
	if again, _, err := c.Current(); err != nil || again.Version != cfg.Version {
		t.Fatalf("lost config: %v", err)
	}

	// A restarted node with the manager still down runs on the disk cache.
	c2 := New[dynconfig.NodeConfig](url, tok, cache, WithInterval(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c2.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, fromCache, err := c2.Current()
		if err == nil {
			if !fromCache || got.Version != cfg.Version || got.Clusters[0].Schedulers[0].ID != pid {
				t.Fatalf("cached: %+v fromCache=%v", got, fromCache)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no config from cache")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestWrongScopeRefused(t *testing.T) {
	hs, st, _, _ := manager(t)
	id, tok, hash := auth.NewPAT()
	st.CreateToken(store.Token{ID: id, Name: "r", User: "nodes", Hash: hash, Scopes: []string{api.ScopeRead}, ExpiresAt: time.Now().Add(time.Hour)})
	c := New[dynconfig.NodeConfig](hs.URL+"/api/v1/dynconfig/node", tok, filepath.Join(t.TempDir(), "c.json"))
	if err := c.Pull(context.Background()); err == nil {
		t.Fatal("read-scoped token got dynconfig")
	}
}

func TestChangeVisibleAfterTrigger(t *testing.T) {
	hs, st, dyn, tok := manager(t)
	c := New[dynconfig.NodeConfig](hs.URL+"/api/v1/dynconfig/node?ip=192.0.2.1", tok, filepath.Join(t.TempDir(), "c.json"), WithInterval(time.Hour), WithMinGap(time.Millisecond))
	updates := make(chan dynconfig.NodeConfig, 10)
	c.OnUpdate(func(n dynconfig.NodeConfig) { updates <- n })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	first := <-updates
	if len(first.Clusters) != 2 || first.Clusters[0].Name != "west" {
		t.Fatalf("no match should list all, default first: %+v", first)
	}
	st.PutCluster(store.Cluster{Name: "doc", Scopes: store.Scopes{CIDRs: []string{"192.0.2.0/24"}}}, true)
	dyn.Invalidate()
	c.Trigger()
	select {
	case n := <-updates:
		if n.Version == first.Version || n.Clusters[0].Name != "doc" {
			t.Fatalf("%+v", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no update after trigger")
	}
}
