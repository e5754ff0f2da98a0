package upload

import (
	"bufio"
	"context"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/storage"
)

// syncWriteTimeout bounds one pieces-sync message write.
const syncWriteTimeout = 30 * time.Second

// HandleSync serves one pieces-sync stream: a header with the task layout,
// the verified pieces, then each newly verified piece, until the task is
// complete (end OK), deleted (end NOT_FOUND) or the requester leaves.
func (s *Server) HandleSync(st network.Stream) {
	defer st.Close()
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req pb.SyncRequest
	if err := protocol.ReadMsg(bufio.NewReaderSize(st, protocol.MaxSyncRequestSize*2), &req, protocol.MaxSyncRequestSize); err != nil {
		_ = st.Reset()
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	id, err := protocol.ParseSyncRequest(&req)
	if err != nil {
		s.send(st, header(pb.Status_STATUS_BAD_REQUEST, "malformed request"))
		_ = st.Reset()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	task, err := s.store.Open(ctx, id)
	if err != nil {
		s.send(st, header(pb.Status_STATUS_NOT_FOUND, "task not held"))
		return
	}
	defer task.Close()

	// The requester sends nothing more; its EOF or reset ends the stream.
	go func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(st, 1))
		cancel()
	}()

	info := task.Info()
	h := &pb.SyncHeader{
		Status:          pb.Status_STATUS_OK,
		ContentLength:   uint64(info.Layout.ContentLength),
		PieceLength:     info.Layout.PieceLength,
		Complete:        info.Complete,
		OriginValidator: validator(info.Origin),
	}
	if !info.ContentDigest.IsZero() {
		h.ContentDigest = info.ContentDigest[:]
	}
	if !s.send(st, &pb.SyncMessage{Body: &pb.SyncMessage_Header{Header: h}}) {
		return
	}
	remote := st.Conn().RemotePeer()
	unsubscribe := s.seed.subscribe(id, remote)
	defer unsubscribe()
	cursor := 0
	var held []protocol.PieceInfo // verified pieces not announced to this peer yet (super-seeding)
	for {
		changed := task.Changed() // before reading, so no change is missed
		var pieces []protocol.PieceInfo
		pieces, cursor = task.Pieces(cursor)
		info := task.Info()
		if info.Complete {
			s.seed.forget(id)
		}
		var (
			wake    <-chan struct{}
			recheck time.Time
		)
		pieces, held = append(held, pieces...), nil
		out := make([]protocol.PieceInfo, 0, len(pieces))
		for _, p := range pieces {
			ok, w, r := true, (<-chan struct{})(nil), time.Time{}
			if !info.Complete {
				ok, w, r = s.seed.visible(id, p.Number, remote)
			}
			if ok {
				out = append(out, p)
				continue
			}
			held = append(held, p)
			if w != nil {
				wake = w
			}
			if !r.IsZero() && (recheck.IsZero() || r.Before(recheck)) {
				recheck = r
			}
		}
		for len(out) > 0 {
			n := min(len(out), protocol.MaxSyncPieces)
			set := &pb.PieceSet{Pieces: make([]*pb.PieceInfo, n)}
			for i, p := range out[:n] {
				set.Pieces[i] = &pb.PieceInfo{Number: p.Number, Digest: p.Digest[:]}
			}
			if !s.send(st, &pb.SyncMessage{Body: &pb.SyncMessage_Pieces{Pieces: set}}) {
				return
			}
			out = out[n:]
		}
		if int(info.VerifiedPieces) < cursor { // pieces discarded (failed whole-content check)
			s.send(st, &pb.SyncMessage{Body: &pb.SyncMessage_End{End: &pb.SyncEnd{Status: pb.Status_STATUS_INTERNAL, Message: "task reset"}}})
			return
		}
		if info.Complete && int(info.VerifiedPieces) <= cursor && len(held) == 0 {
			s.send(st, &pb.SyncMessage{Body: &pb.SyncMessage_End{End: &pb.SyncEnd{Status: pb.Status_STATUS_OK}}})
			return
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if !recheck.IsZero() {
			timer = time.NewTimer(max(time.Until(recheck), 10*time.Millisecond))
			fire = timer.C
		}
		select {
		case <-changed:
		case <-wake:
		case <-fire:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		if task.Err() != nil { // deleted meanwhile
			s.send(st, &pb.SyncMessage{Body: &pb.SyncMessage_End{End: &pb.SyncEnd{Status: pb.Status_STATUS_NOT_FOUND, Message: "task deleted"}}})
			return
		}
	}
}

func header(status pb.Status, msg string) *pb.SyncMessage {
	return &pb.SyncMessage{Body: &pb.SyncMessage_Header{Header: &pb.SyncHeader{Status: status, Message: msg}}}
}

func (s *Server) send(st network.Stream, m *pb.SyncMessage) bool {
	_ = st.SetWriteDeadline(time.Now().Add(syncWriteTimeout))
	if err := protocol.WriteMsg(st, m); err != nil {
		_ = st.Reset()
		return false
	}
	return true
}

// validator is what identifies the origin's version of a URL task's copy.
func validator(o storage.Origin) string {
	if o.ETag != "" {
		return o.ETag
	}
	return o.LastModified
}
