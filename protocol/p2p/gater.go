package p2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Gater is the host's connection gater. It refuses peers whose identity is
// not Ed25519 and peers blocked after failing cluster admission, both at
// dial time and right after the security handshake (InterceptSecured).
type Gater struct {
	now func() time.Time

	mu      sync.Mutex
	blocked map[peer.ID]time.Time // until
	refused uint64
}

// NewGater returns an empty gater.
func NewGater() *Gater {
	return &Gater{now: time.Now, blocked: make(map[peer.ID]time.Time)}
}

// Block refuses p until d has passed.
func (g *Gater) Block(p peer.ID, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked[p] = g.now().Add(d)
	if len(g.blocked) > 4096 {
		g.pruneLocked()
	}
}

// Unblock lifts a block.
func (g *Gater) Unblock(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.blocked, p)
}

// Refused counts connections refused so far.
func (g *Gater) Refused() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused
}

func (g *Gater) pruneLocked() {
	now := g.now()
	for p, until := range g.blocked {
		if now.After(until) {
			delete(g.blocked, p)
		}
	}
}

func (g *Gater) allowed(p peer.ID) bool {
	if !isEd25519(p) {
		g.mu.Lock()
		g.refused++
		g.mu.Unlock()
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.blocked[p]
	if !ok {
		return true
	}
	if g.now().After(until) {
		delete(g.blocked, p)
		return true
	}
	g.refused++
	return false
}

func isEd25519(p peer.ID) bool {
	pk, err := p.ExtractPublicKey()
	return err == nil && pk.Type() == crypto.Ed25519
}

// InterceptPeerDial implements connmgr.ConnectionGater.
func (g *Gater) InterceptPeerDial(p peer.ID) bool { return g.allowed(p) }

// InterceptAddrDial implements connmgr.ConnectionGater.
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allowed(p) }

// InterceptAccept implements connmgr.ConnectionGater.
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured implements connmgr.ConnectionGater.
func (g *Gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allowed(p)
}

// InterceptUpgraded implements connmgr.ConnectionGater.
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
