package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/bcrypt"

	"github.com/dragonfly-p2p/df/protocol/dynclient"
	"github.com/dragonfly-p2p/df/protocol/p2p"
)

func start(t *testing.T, cfg Config, out *bytes.Buffer) (*Manager, func()) {
	t.Helper()
	m, err := New(cfg, WithBootstrapOutput(out), withBcryptCost(bcrypt.MinCost))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	for m.Ready() != nil {
		time.Sleep(5 * time.Millisecond)
	}
	return m, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func login(t *testing.T, base, pw string) (int, string) {
	resp, err := http.Post(base+"/api/v1/login", "application/json", strings.NewReader(fmt.Sprintf(`{"name":"root","password":%q}`, pw)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lr struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&lr)
	return resp.StatusCode, lr.Token
}

func TestFirstStartAndRestart(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Addr = t.TempDir(), "127.0.0.1:0"
	var out bytes.Buffer
	m, stop := start(t, cfg, &out)
	match := regexp.MustCompile(`password (\S+)`).FindStringSubmatch(out.String())
	if match == nil {
		t.Fatalf("no password printed: %q", out.String())
	}
	base := "http://" + m.Addr()
	code, tok := login(t, base, match[1])
	if code != 200 || tok == "" {
		t.Fatalf("login %d", code)
	}
	stop()

	out.Reset()
	m, stop = start(t, cfg, &out)
	defer stop()
	if out.Len() != 0 {
		t.Fatalf("password printed again: %q", out.String())
	}
	base = "http://" + m.Addr()
	// The signing key survived the restart: the old session still works.
	req, _ := http.NewRequest("GET", base+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("session after restart: %d", resp.StatusCode)
	}
	if code, _ := login(t, base, "not-the-password"); code != 401 {
		t.Fatalf("wrong password: %d", code)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
	}{
		{"no data dir", func(c *Config) { c.DataDir = "" }},
		{"bad addr", func(c *Config) { c.Addr = "nope" }},
		{"cert without key", func(c *Config) { c.TLSCertFile = "x" }},
		{"weak bcrypt", func(c *Config) { c.BcryptCost = 4 }},
		{"session ttl", func(c *Config) { c.SessionTTL = time.Second }},
		{"bad allow", func(c *Config) { c.PreheatAllow = []string{"10.0.0.0/99"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			if err := c.Validate(); !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v", err)
			}
		})
	}
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestAnnouncesConfigVersions: a cluster created through the API makes the
// manager publish the new dynconfig version on the config topic.
func TestAnnouncesConfigVersions(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mk := func() host.Host {
		h, err := p2p.NewHost(t.TempDir(), p2p.NewGater(), p2p.WithListen("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	mh, nh := mk(), mk()
	mps, _ := pubsub.NewGossipSub(ctx, mh, pubsub.WithFloodPublish(true))
	nps, _ := pubsub.NewGossipSub(ctx, nh)
	if err := nh.Connect(ctx, peer.AddrInfo{ID: mh.ID(), Addrs: mh.Addrs()}); err != nil {
		t.Fatal(err)
	}
	nt, _ := nps.Join(dynclient.Topic)
	sub, _ := nt.Subscribe()

	cfg := DefaultConfig()
	cfg.DataDir, cfg.Addr = t.TempDir(), "127.0.0.1:0"
	var out bytes.Buffer
	m, err := New(cfg, WithBootstrapOutput(&out), withBcryptCost(bcrypt.MinCost), WithPubSub(mps))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for m.Ready() != nil {
		time.Sleep(5 * time.Millisecond)
	}
	pw := regexp.MustCompile(`password (\S+)`).FindStringSubmatch(out.String())[1]
	_, tok := login(t, "http://"+m.Addr(), pw)
	// Wait until the manager sees the node in the topic, then change something.
	deadline := time.Now().Add(10 * time.Second)
	for len(mps.ListPeers(dynclient.Topic)) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	req, _ := http.NewRequest("POST", "http://"+m.Addr()+"/api/v1/clusters", strings.NewReader(`{"name":"c1","default":true}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	want, _ := m.Dynconfig().Version()
	mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
	defer mcancel()
	for {
		msg, err := sub.Next(mctx)
		if err != nil {
			t.Fatalf("no announcement of %s: %v", want, err)
		}
		var a dynclient.Announcement
		json.Unmarshal(msg.Data, &a)
		if a.Version == want {
			return
		}
	}
}
