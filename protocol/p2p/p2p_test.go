package p2p

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestIdentityPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), IdentityFile)
	k1, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	k2, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("identity changed across loads")
	}
}

func TestIdentityRefused(t *testing.T) {
	dir := t.TempDir()
	readable := filepath.Join(dir, "readable")
	k, _, _ := crypto.GenerateEd25519Key(nil)
	raw, _ := crypto.MarshalPrivateKey(k)
	if err := os.WriteFile(readable, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(readable); !errors.Is(err, ErrUnsafeKey) {
		t.Fatalf("world-readable key: %v", err)
	}
	rsa := filepath.Join(dir, "rsa")
	rk, _, err := crypto.GenerateKeyPair(crypto.ECDSA, 256)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = crypto.MarshalPrivateKey(rk)
	if err := os.WriteFile(rsa, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(rsa); err == nil {
		t.Fatal("accepted a non-Ed25519 identity")
	}
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	if _, err := LoadOrCreateIdentity(garbage); err == nil {
		t.Fatal("accepted a garbage identity")
	}
}

func TestGater(t *testing.T) {
	g := NewGater()
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	ed, _, _ := crypto.GenerateEd25519Key(nil)
	edID, _ := peer.IDFromPrivateKey(ed)
	ec, _, _ := crypto.GenerateKeyPair(crypto.ECDSA, 256)
	ecID, _ := peer.IDFromPrivateKey(ec)

	if !g.InterceptSecured(network.DirInbound, edID, nil) {
		t.Fatal("refused an Ed25519 peer")
	}
	if g.InterceptSecured(network.DirInbound, ecID, nil) || g.InterceptPeerDial(ecID) {
		t.Fatal("let a non-Ed25519 peer through")
	}
	g.Block(edID, time.Minute)
	if g.InterceptSecured(network.DirInbound, edID, nil) || g.InterceptAddrDial(edID, nil) {
		t.Fatal("blocked peer let through")
	}
	now = now.Add(2 * time.Minute)
	if !g.InterceptSecured(network.DirOutbound, edID, nil) {
		t.Fatal("block did not expire")
	}
	if g.Refused() != 4 {
		t.Fatalf("refused = %d, want 4", g.Refused())
	}
}
