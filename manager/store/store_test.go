package store

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func open(t *testing.T, path string, c *clock) *Store {
	t.Helper()
	s, err := Open(path, WithClock(c.now))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	c := &clock{time.Unix(1000, 0)}
	s := open(t, path, c)
	if err := s.CreateUser(User{Name: "alice", Role: RoleAdmin, PasswordHash: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	j, err := s.CreateJob(Job{Type: JobPreheat, Args: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path, c)
	defer s.Close()
	if v, _ := s.Schema(); v != SchemaVersion {
		t.Fatalf("schema %d", v)
	}
	if u, err := s.User("alice"); err != nil || u.Role != RoleAdmin {
		t.Fatalf("user %+v %v", u, err)
	}
	if got, err := s.Job(j.ID); err != nil || got.State != JobPending {
		t.Fatalf("job %+v %v", got, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s := open(t, path, &clock{time.Now()})
	s.db.Update(func(tx *bolt.Tx) error {
		b := make([]byte, 8)
		binary.BigEndian.PutUint64(b, SchemaVersion+1)
		return tx.Bucket(bMeta).Put(keySchema, b)
	})
	s.Close()
	if _, err := Open(path); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("got %v", err)
	}
}

func TestUsersAndTokens(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "m.db"), &clock{time.Now()})
	defer s.Close()
	if err := s.CreateUser(User{Name: "bob", Role: RoleGuest}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(User{Name: "bob", Role: RoleGuest}); !errors.Is(err, ErrExists) {
		t.Fatalf("dup: %v", err)
	}
	if err := s.CreateToken(Token{ID: "t1", User: "nobody"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token for missing user: %v", err)
	}
	if err := s.CreateToken(Token{ID: "t1", User: "bob", Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser("bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token("t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token survived its user: %v", err)
	}
}

func TestSingleDefaultCluster(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "m.db"), &clock{time.Now()})
	defer s.Close()
	for _, n := range []string{"a", "b"} {
		if err := s.PutCluster(Cluster{Name: n, Default: true}, true); err != nil {
			t.Fatal(err)
		}
	}
	cs, _ := s.Clusters()
	defaults := 0
	for _, c := range cs {
		if c.Default {
			defaults++
			if c.Name != "b" {
				t.Fatalf("default is %s", c.Name)
			}
		}
	}
	if defaults != 1 {
		t.Fatalf("%d defaults", defaults)
	}
	if err := s.PutCluster(Cluster{Name: "zzz"}, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
}

func TestKeepaliveActiveInactive(t *testing.T) {
	c := &clock{time.Unix(5000, 0)}
	s := open(t, filepath.Join(t.TempDir(), "m.db"), c)
	defer s.Close()
	if err := s.Keepalive(KindScheduler, Instance{ID: "p1", Cluster: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("keepalive into missing cluster: %v", err)
	}
	s.PutCluster(Cluster{Name: "c"}, true)
	if err := s.Keepalive(KindScheduler, Instance{ID: "p1", Cluster: "c"}); err != nil {
		t.Fatal(err)
	}
	in, _ := s.Instances(KindScheduler, "c", time.Minute)
	if len(in) != 1 || in[0].State != StateActive {
		t.Fatalf("%+v", in)
	}
	c.t = c.t.Add(2 * time.Minute)
	in, _ = s.Instances(KindScheduler, "c", time.Minute)
	if in[0].State != StateInactive {
		t.Fatalf("%+v", in)
	}
	if sp, _ := s.Instances(KindSeedPeer, "", time.Minute); len(sp) != 0 {
		t.Fatalf("seed peers leaked: %+v", sp)
	}
}

func TestConfigVersions(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "m.db"), &clock{time.Now()})
	defer s.Close()
	// "a" is a prefix of "ab": versions must not mix.
	for i := 1; i <= 3; i++ {
		if d, err := s.PutConfig("a", "root", map[string]any{"n": float64(i)}); err != nil || d.Version != uint64(i) {
			t.Fatalf("%+v %v", d, err)
		}
	}
	s.PutConfig("ab", "root", map[string]any{"n": 99.0})
	d, err := s.Config("a", 0)
	if err != nil || d.Version != 3 || d.Data["n"] != 3.0 {
		t.Fatalf("latest %+v %v", d, err)
	}
	d, _ = s.Config("a", 1)
	if d.Data["n"] != 1.0 {
		t.Fatalf("v1 %+v", d)
	}
	if vs, _ := s.ConfigVersions("a"); len(vs) != 3 {
		t.Fatalf("%d versions", len(vs))
	}
	if _, err := s.Config("missing", 0); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

func TestAuditPaging(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "m.db"), &clock{time.Now()})
	defer s.Close()
	for i := 0; i < 5; i++ {
		s.Audit(AuditEntry{Actor: "root", Action: "x"})
	}
	page, _ := s.AuditLog(0, 2)
	if len(page) != 2 || page[0].Seq != 5 || page[1].Seq != 4 {
		t.Fatalf("%+v", page)
	}
	page, _ = s.AuditLog(4, 10)
	if len(page) != 3 || page[0].Seq != 3 {
		t.Fatalf("%+v", page)
	}
}

func TestSecretStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s := open(t, path, &clock{time.Now()})
	n := 0
	gen := func() ([]byte, error) { n++; return []byte{byte(n)}, nil }
	a, _ := s.Secret("jwt", gen)
	s.Close()
	s = open(t, path, &clock{time.Now()})
	defer s.Close()
	b, _ := s.Secret("jwt", gen)
	if n != 1 || string(a) != string(b) {
		t.Fatalf("secret regenerated: %v %v n=%d", a, b, n)
	}
}
