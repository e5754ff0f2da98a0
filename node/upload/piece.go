package upload

import (
	"bufio"
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/dragonfly-p2p/df/node/ratelimit"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/storage"
)

// maxOpenTasks bounds task handles one piece stream keeps open.
const maxOpenTasks = 8

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// HandlePiece serves one piece stream: any number of requests, answered in
// order. A malformed frame resets the stream.
func (s *Server) HandlePiece(st network.Stream) {
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := bufio.NewReaderSize(st, protocol.MaxPieceRequestSize*4)
	tasks := make(map[protocol.TaskID]storage.Task)
	defer func() {
		for _, t := range tasks {
			t.Close()
		}
	}()
	remote := st.Conn().RemotePeer()
	for {
		_ = st.SetReadDeadline(time.Now().Add(s.idle))
		var req pb.PieceRequest
		if err := protocol.ReadMsg(r, &req, protocol.MaxPieceRequestSize); err != nil {
			if !errors.Is(err, io.EOF) {
				s.log.Debug("piece stream: bad or missing request; resetting", "peer", remote, "err", err)
				_ = st.Reset()
			}
			return
		}
		_ = st.SetReadDeadline(time.Time{})
		id, n, err := protocol.ParsePieceRequest(&req)
		if err != nil {
			s.reply(st, &pb.PieceResponse{Status: pb.Status_STATUS_BAD_REQUEST, Number: req.GetNumber(), Message: "malformed request"})
			_ = st.Reset()
			return
		}
		task, err := s.task(ctx, tasks, id)
		if err != nil {
			if !s.reply(st, notFound(n, err)) {
				return
			}
			continue
		}
		if err := s.sendPiece(ctx, st, task, n); err != nil {
			s.log.Debug("piece upload failed", "peer", remote, "task", id.Short(), "piece", n, "err", err)
			_ = st.Reset()
			return
		}
	}
}

func notFound(n uint32, err error) *pb.PieceResponse {
	status := pb.Status_STATUS_NOT_FOUND
	msg := "piece not held"
	if !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrClosed) && !errors.Is(err, protocol.ErrPieceOutOfRange) {
		status, msg = pb.Status_STATUS_INTERNAL, "store unavailable"
	}
	return &pb.PieceResponse{Status: status, Number: n, Message: msg}
}

func (s *Server) task(ctx context.Context, open map[protocol.TaskID]storage.Task, id protocol.TaskID) (storage.Task, error) {
	if t, ok := open[id]; ok {
		return t, nil
	}
	t, err := s.store.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(open) >= maxOpenTasks {
		for k, old := range open {
			old.Close()
			delete(open, k)
			break
		}
	}
	open[id] = t
	return t, nil
}

// reply writes a header-only response; false means the stream is gone.
func (s *Server) reply(st network.Stream, m *pb.PieceResponse) bool {
	s.metrics.pieces.WithLabelValues(m.GetStatus().String()).Inc()
	_ = st.SetWriteDeadline(time.Now().Add(15 * time.Second))
	if err := protocol.WriteMsg(st, m); err != nil {
		_ = st.Reset()
		return false
	}
	return true
}

// sendPiece answers one request; an error means the stream must be reset.
func (s *Server) sendPiece(ctx context.Context, st network.Stream, task storage.Task, n uint32) error {
	layout := task.Info().Layout
	off, length, err := layout.Piece(n)
	if err != nil {
		return boolErr(s.reply(st, notFound(n, err)))
	}
	rd, info, err := task.Piece(n)
	if err != nil {
		return boolErr(s.reply(st, notFound(n, err)))
	}
	id := task.Info().ID
	remote := st.Conn().RemotePeer()
	s.seed.requested(id, n, remote)
	if !s.slots.acquireNoting(ctx, pieceKey{id, n}, s.wait, func() func() { return s.seed.begin(id, remote) }) {
		return boolErr(s.reply(st, &pb.PieceResponse{Status: pb.Status_STATUS_BUSY, Number: n, Message: "upload slots full"}))
	}
	defer s.slots.release()
	s.seed.sending(id, n)

	s.metrics.pieces.WithLabelValues(pb.Status_STATUS_OK.String()).Inc()
	_ = st.SetWriteDeadline(time.Now().Add(15*time.Second + time.Duration(length)*time.Second/minUploadRate))
	defer st.SetWriteDeadline(time.Time{})
	if err := protocol.WriteMsg(st, &pb.PieceResponse{
		Status: pb.Status_STATUS_OK, Number: n, Offset: uint64(off), Length: length, Digest: info.Digest[:],
	}); err != nil {
		return err
	}
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	w := ratelimit.NewWriter(ctx, s.slots.writer(st), s.limit)
	written, err := io.CopyBuffer(w, io.LimitReader(rd, int64(length)), *bufp)
	s.metrics.bytes.Add(float64(written))
	s.sent.Add(written)
	if err == nil && written != int64(length) {
		err = io.ErrUnexpectedEOF // the store lost bytes under us
	}
	return err
}

// errStreamGone reports that a reply could not be written.
var errStreamGone = errors.New("stream gone")

func boolErr(ok bool) error {
	if ok {
		return nil
	}
	return errStreamGone
}
