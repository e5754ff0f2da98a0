// Package preheatclient is the requester side of the preheat protocol
// (/dragonfly/preheat/1.0.0): it sends one request to a seed peer and reads
// its progress frames until the final one. The manager uses it; it lives in
// protocol because the manager and the node meet only there.
package preheatclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
)

// ErrFailed wraps the error a seed peer reported in its final frame.
var ErrFailed = errors.New("seed peer reports failure")

// ErrSilent: the seed peer sent no frame for IdleTimeout.
var ErrSilent = errors.New("seed peer went silent")

// IdleTimeout is how long the requester waits for the next frame; running
// preheats report at least every second, queued ones stay silent while
// they wait, so this is generous.
var IdleTimeout = 10 * time.Minute

// Do sends req to p over h and returns the final frame. progress (may be
// nil) sees every QUEUED/RUNNING frame. A FAILED final frame is returned
// together with an error wrapping ErrFailed.
func Do(ctx context.Context, h host.Host, p peer.ID, req *pb.PreheatRequest, progress func(protocol.PreheatProgress)) (protocol.PreheatProgress, error) {
	if _, err := protocol.ParsePreheatRequest(req); err != nil {
		return protocol.PreheatProgress{}, err
	}
	s, err := h.NewStream(ctx, p, protocol.PreheatID)
	if err != nil {
		return protocol.PreheatProgress{}, fmt.Errorf("open preheat stream to %s: %w", p, err)
	}
	ok := false
	defer func() {
		if ok {
			_ = s.Close()
		} else {
			_ = s.Reset()
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := protocol.WriteMsg(s, req); err != nil {
		return protocol.PreheatProgress{}, fmt.Errorf("send preheat request: %w", err)
	}
	_ = s.CloseWrite()
	r := bufio.NewReaderSize(s, 4096)
	for {
		_ = s.SetReadDeadline(time.Now().Add(IdleTimeout))
		var m pb.PreheatProgress
		if err := protocol.ReadMsg(r, &m, protocol.MaxPreheatProgressSize); err != nil {
			if ctx.Err() != nil {
				return protocol.PreheatProgress{}, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w: %w", ErrSilent, err)
			}
			return protocol.PreheatProgress{}, fmt.Errorf("read preheat progress from %s: %w", p, err)
		}
		pr, err := protocol.ParsePreheatProgress(&m)
		if err != nil {
			return pr, fmt.Errorf("preheat progress from %s: %w", p, err)
		}
		if !pr.Final() {
			if progress != nil {
				progress(pr)
			}
			continue
		}
		ok = true
		if pr.State == pb.PreheatState_PREHEAT_STATE_FAILED {
			return pr, fmt.Errorf("%w: %s", ErrFailed, pr.Error)
		}
		return pr, nil
	}
}
