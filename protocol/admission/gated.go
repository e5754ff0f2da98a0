package admission

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
)

// guardTimeout bounds how long an inbound stream waits for its peer's
// admission before it is reset.
const guardTimeout = 15 * time.Second

// Guard wraps a stream handler so that it only runs for admitted peers;
// streams from anyone else are reset.
func (a *Admission) Guard(h network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		ctx, cancel := context.WithTimeout(context.Background(), guardTimeout)
		err := a.Wait(ctx, s.Conn().RemotePeer())
		cancel()
		if err != nil {
			a.log.Debug("refusing stream from non-member", "peer", s.Conn().RemotePeer(), "protocol", s.Protocol(), "err", err)
			_ = s.Reset()
			return
		}
		h(s)
	}
}

// GatedHost returns h wrapped so that every stream handler registered
// through it is guarded (see Guard) and every outbound stream opened
// through it first waits for the remote peer's admission. Hand it to the
// DHT, pubsub and the node's own services.
func (a *Admission) GatedHost(h host.Host) host.Host { return &gatedHost{Host: h, a: a} }

type gatedHost struct {
	host.Host
	a *Admission
}

func (g *gatedHost) SetStreamHandler(pid libp2pproto.ID, h network.StreamHandler) {
	g.Host.SetStreamHandler(pid, g.a.Guard(h))
}

func (g *gatedHost) SetStreamHandlerMatch(pid libp2pproto.ID, m func(libp2pproto.ID) bool, h network.StreamHandler) {
	g.Host.SetStreamHandlerMatch(pid, m, g.a.Guard(h))
}

func (g *gatedHost) NewStream(ctx context.Context, p peer.ID, pids ...libp2pproto.ID) (network.Stream, error) {
	if g.Host.Network().Connectedness(p) != network.Connected {
		if err := g.Host.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
			return nil, fmt.Errorf("connect %s: %w", p, err)
		}
	}
	if err := g.a.Wait(ctx, p); err != nil {
		return nil, err
	}
	return g.Host.NewStream(ctx, p, pids...)
}

// Connect connects and waits for admission.
func (g *gatedHost) Connect(ctx context.Context, pi peer.AddrInfo) error {
	if err := g.Host.Connect(ctx, pi); err != nil {
		return err
	}
	return g.a.Wait(ctx, pi.ID)
}
