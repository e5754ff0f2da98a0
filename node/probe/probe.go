// Package probe measures round-trip times between nodes with the probe
// protocol (/dragonfly/probe/1.0.0): the prober sends a small random
// payload and times its echo. Schedulers ask nodes to probe the hosts they
// may pair them with and rank parents by the results.
package probe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
)

// payloadSize is the echoed payload.
const payloadSize = 32

// ErrBadEcho: the target answered with other bytes.
var ErrBadEcho = errors.New("probe echo does not match")

// Register installs the echo handler on h (the admission-gated host).
func Register(h host.Host) { h.SetStreamHandler(protocol.ProbeID, handle) }

func handle(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReaderSize(s, protocol.MaxProbeSize)
	for i := 0; i < 4; i++ { // a few probes per stream at most
		var m pb.ProbeEcho
		if err := protocol.ReadMsg(r, &m, protocol.MaxProbeSize); err != nil {
			if !errors.Is(err, io.EOF) {
				_ = s.Reset()
			}
			return
		}
		if err := protocol.WriteMsg(s, &m); err != nil {
			_ = s.Reset()
			return
		}
	}
}

// Result is one probe's outcome.
type Result struct {
	Peer peer.ID
	RTT  time.Duration
	Err  error
}

// Probe measures the RTT to p (best of two echoes on one stream).
func Probe(ctx context.Context, h host.Host, p peer.AddrInfo) (time.Duration, error) {
	if len(p.Addrs) > 0 {
		h.Peerstore().AddAddrs(p.ID, p.Addrs, peerstore.TempAddrTTL)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p.ID, protocol.ProbeID)
	if err != nil {
		return 0, fmt.Errorf("probe %s: %w", p.ID, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	r := bufio.NewReaderSize(s, protocol.MaxProbeSize)
	best := time.Duration(-1)
	for range 2 {
		payload := make([]byte, payloadSize)
		if _, err := rand.Read(payload); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := protocol.WriteMsg(s, &pb.ProbeEcho{Payload: payload}); err != nil {
			return 0, err
		}
		var m pb.ProbeEcho
		if err := protocol.ReadMsg(r, &m, protocol.MaxProbeSize); err != nil {
			return 0, err
		}
		rtt := time.Since(start)
		if !bytes.Equal(m.GetPayload(), payload) {
			return 0, ErrBadEcho
		}
		if best < 0 || rtt < best {
			best = rtt
		}
	}
	return best, nil
}

// ProbeAll probes targets concurrently (at most 8 at once).
func ProbeAll(ctx context.Context, h host.Host, targets []peer.AddrInfo) []Result {
	out := make([]Result, len(targets))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rtt, err := Probe(ctx, h, t)
			out[i] = Result{Peer: t.ID, RTT: rtt, Err: err}
		})
	}
	wg.Wait()
	return out
}
