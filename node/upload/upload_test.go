package upload_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dragonfly-p2p/df/node/upload"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/p2p"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/storage/disk"
)

// setup: a host serving a store holding one 3-piece task, and a client host.
func setup(t *testing.T) (client host.Host, server peer.ID, id protocol.TaskID, data []byte) {
	t.Helper()
	ctx := context.Background()
	store, err := disk.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	data = bytes.Repeat([]byte("dragonfly"), 3*protocol.MinPieceLength/9+100)
	info, err := store.Import(ctx, storage.ImportSpec{Kind: storage.KindContent, Size: int64(len(data)), PieceLength: protocol.MinPieceLength}, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	newHost := func() host.Host {
		h, err := p2p.NewHost(t.TempDir(), p2p.NewGater(), p2p.WithListen("/ip4/127.0.0.1/udp/0/quic-v1"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	srv, cli := newHost(), newHost()
	upload.New(store, upload.WithIdleTimeout(2*time.Second)).Register(srv) // raw host: admission is tested elsewhere
	if err := cli.Connect(ctx, peer.AddrInfo{ID: srv.ID(), Addrs: srv.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return cli, srv.ID(), info.ID, data
}

func open(t *testing.T, h host.Host, p peer.ID, proto libp2pproto.ID) network.Stream {
	t.Helper()
	s, err := h.NewStream(context.Background(), p, proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	return s
}

func TestPieceRequests(t *testing.T) {
	cli, srv, id, data := setup(t)
	s := open(t, cli, srv, protocol.PieceID)
	r := bufio.NewReader(s)
	other := protocol.ContentTaskID(protocol.SHA256([]byte("other")))
	tests := []struct {
		name   string
		task   protocol.TaskID
		number uint32
		status pb.Status
	}{
		{"first piece", id, 0, pb.Status_STATUS_OK},
		{"last, short piece", id, 3, pb.Status_STATUS_OK},
		{"piece past the end", id, 4, pb.Status_STATUS_NOT_FOUND},
		{"unknown task", other, 0, pb.Status_STATUS_NOT_FOUND},
		{"middle piece", id, 1, pb.Status_STATUS_OK},
	}
	// Pipelined: all requests first, then the answers in order.
	for _, tt := range tests {
		if err := protocol.WriteMsg(s, &pb.PieceRequest{TaskId: tt.task.Multihash(), Number: tt.number}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m pb.PieceResponse
			if err := protocol.ReadMsg(r, &m, protocol.MaxPieceResponseSize); err != nil {
				t.Fatal(err)
			}
			h, err := protocol.ParsePieceResponse(&m)
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != tt.status {
				t.Fatalf("status %v, want %v (%s)", h.Status, tt.status, h.Message)
			}
			if h.Status != pb.Status_STATUS_OK {
				return
			}
			buf := make([]byte, h.Length)
			if _, err := io.ReadFull(r, buf); err != nil {
				t.Fatal(err)
			}
			want := data[h.Offset : h.Offset+int64(h.Length)]
			if !bytes.Equal(buf, want) || h.Digest != protocol.SHA256(want) {
				t.Fatal("piece bytes or digest wrong")
			}
		})
	}
}

// A piece number beyond the protocol's limit is malformed: answered
// BAD_REQUEST, then the stream is reset.
func TestPieceNumberBeyondLimit(t *testing.T) {
	cli, srv, id, _ := setup(t)
	s := open(t, cli, srv, protocol.PieceID)
	if err := protocol.WriteMsg(s, &pb.PieceRequest{TaskId: id.Multihash(), Number: 1 << 31}); err != nil {
		t.Fatal(err)
	}
	var m pb.PieceResponse
	err := protocol.ReadMsg(bufio.NewReader(s), &m, protocol.MaxPieceResponseSize)
	if err == nil && m.GetStatus() != pb.Status_STATUS_BAD_REQUEST {
		t.Fatalf("status %v, want BAD_REQUEST", m.GetStatus())
	}
}

func TestBadFramesResetTheStream(t *testing.T) {
	cli, srv, id, _ := setup(t)
	tests := []struct {
		name  string
		proto libp2pproto.ID
		send  []byte
	}{
		{"piece: 4 GiB length prefix", protocol.PieceID, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"piece: non-minimal varint", protocol.PieceID, []byte{0x82, 0x00, 0x08, 0x01}},
		{"piece: garbage body", protocol.PieceID, []byte{4, 0xff, 0xfe, 0xfd, 0xfc}},
		{"piece: short task ID", protocol.PieceID, mustFrame(&pb.PieceRequest{TaskId: []byte{0x12, 0x20, 1, 2}})},
		{"sync: oversized frame", protocol.PiecesSyncID, []byte{0x80, 0x80, 0x04}},
		{"sync: garbage", protocol.PiecesSyncID, []byte("GET / HTTP/1.1\r\n\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, cli, srv, tt.proto)
			if _, err := s.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			// The server answers at most an error frame, then resets.
			_, err := io.ReadAll(io.LimitReader(s, 1<<20))
			if err == nil {
				return // closed after an error reply is fine too
			}
			var se *network.StreamError
			if !errors.As(err, &se) && !errors.Is(err, network.ErrReset) {
				t.Fatalf("unexpected error %v", err)
			}
		})
	}
	// The server still serves afterwards.
	s := open(t, cli, srv, protocol.PiecesSyncID)
	if err := protocol.WriteMsg(s, &pb.SyncRequest{TaskId: id.Multihash()}); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(s)
	var m pb.SyncMessage
	if err := protocol.ReadMsg(r, &m, protocol.MaxSyncMessageSize); err != nil {
		t.Fatal(err)
	}
	h, err := protocol.ParseSyncHeader(m.GetHeader())
	if err != nil || h.Status != pb.Status_STATUS_OK || !h.Complete || h.Layout.PieceCount() != 4 {
		t.Fatalf("header %+v %v", h, err)
	}
	var seen int
	for {
		var m pb.SyncMessage
		if err := protocol.ReadMsg(r, &m, protocol.MaxSyncMessageSize); err != nil {
			t.Fatal(err)
		}
		if ps := m.GetPieces(); ps != nil {
			seen += len(ps.Pieces)
			continue
		}
		if m.GetEnd().GetStatus() != pb.Status_STATUS_OK {
			t.Fatalf("end %v", m.GetEnd())
		}
		break
	}
	if seen != 4 {
		t.Fatalf("sync listed %d pieces, want 4", seen)
	}
}

func TestIdleStreamIsClosed(t *testing.T) {
	cli, srv, _, _ := setup(t)
	s := open(t, cli, srv, protocol.PieceID)
	start := time.Now()
	if _, err := io.ReadAll(s); err == nil && time.Since(start) > 8*time.Second {
		t.Fatal("idle stream not closed by the idle timeout")
	}
}

func mustFrame(m *pb.PieceRequest) []byte {
	b, err := protocol.AppendMsg(nil, m)
	if err != nil {
		panic(err)
	}
	return b
}
