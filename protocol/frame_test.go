package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/dragonfly-p2p/df/protocol/pb"
	"google.golang.org/protobuf/proto"
)

func TestReadMsgRoundTrip(t *testing.T) {
	id := ContentTaskID(SHA256([]byte("x")))
	var buf bytes.Buffer
	for i := uint32(0); i < 3; i++ {
		if err := WriteMsg(&buf, &pb.PieceRequest{TaskId: id.Multihash(), Number: i}); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for i := uint32(0); i < 3; i++ {
		var m pb.PieceRequest
		if err := ReadMsg(r, &m, MaxPieceRequestSize); err != nil {
			t.Fatal(err)
		}
		gotID, n, err := ParsePieceRequest(&m)
		if err != nil || gotID != id || n != i {
			t.Fatalf("frame %d: %v %d %v", i, gotID, n, err)
		}
	}
	if err := ReadMsg(r, &pb.PieceRequest{}, MaxPieceRequestSize); err != io.EOF {
		t.Fatalf("clean end: err = %v, want io.EOF", err)
	}
}

func TestReadMsgErrors(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{name: "4 GiB prefix", input: []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, want: ErrFrameTooLarge},
		{name: "over limit", input: []byte{65}, want: ErrFrameTooLarge},
		{name: "varint overflow", input: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, want: ErrBadFrame},
		{name: "non-minimal varint", input: []byte{0x85, 0x00}, want: ErrBadFrame},
		{name: "truncated prefix", input: []byte{0x85}, want: io.ErrUnexpectedEOF},
		{name: "truncated body", input: []byte{10, 1, 2}, want: io.ErrUnexpectedEOF},
		{name: "garbage body", input: []byte{3, 0xff, 0xff, 0xff}, want: ErrBadFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ReadMsg(bufio.NewReader(bytes.NewReader(tt.input)), &pb.PieceRequest{}, MaxPieceRequestSize)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// A frame that claims 4 GiB must fail without reading (or allocating) it.
func TestReadMsgDoesNotAllocateClaimedLength(t *testing.T) {
	r := bufio.NewReader(io.MultiReader(bytes.NewReader([]byte{0xfe, 0xff, 0xff, 0xff, 0x0f}), strings.NewReader(strings.Repeat("x", 1<<20))))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := ReadMsg(r, &pb.SyncMessage{}, MaxSyncMessageSize)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<10 {
		t.Fatalf("%d bytes allocated for a refused frame", n)
	}
}

func TestParsePieceResponse(t *testing.T) {
	d := SHA256([]byte("piece"))
	tests := []struct {
		name string
		msg  *pb.PieceResponse
		ok   bool
	}{
		{"ok", &pb.PieceResponse{Status: pb.Status_STATUS_OK, Length: 10, Digest: d[:]}, true},
		{"not found", &pb.PieceResponse{Status: pb.Status_STATUS_NOT_FOUND}, true},
		{"unspecified status", &pb.PieceResponse{}, false},
		{"unknown status", &pb.PieceResponse{Status: 99}, false},
		{"zero length", &pb.PieceResponse{Status: pb.Status_STATUS_OK, Digest: d[:]}, false},
		{"length above max", &pb.PieceResponse{Status: pb.Status_STATUS_OK, Length: MaxPieceLength + 1, Digest: d[:]}, false},
		{"short digest", &pb.PieceResponse{Status: pb.Status_STATUS_OK, Length: 10, Digest: d[:31]}, false},
		{"offset beyond limit", &pb.PieceResponse{Status: pb.Status_STATUS_OK, Length: 10, Digest: d[:], Offset: 1 << 62}, false},
		{"long message", &pb.PieceResponse{Status: pb.Status_STATUS_BUSY, Message: strings.Repeat("m", 300)}, false},
		{"invalid utf8 message", &pb.PieceResponse{Status: pb.Status_STATUS_BUSY, Message: "\xff"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePieceResponse(tt.msg)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestParseSyncHeader(t *testing.T) {
	tests := []struct {
		name string
		msg  *pb.SyncHeader
		ok   bool
	}{
		{"ok", &pb.SyncHeader{Status: pb.Status_STATUS_OK, ContentLength: 100, PieceLength: 1 << 20}, true},
		{"ok empty", &pb.SyncHeader{Status: pb.Status_STATUS_OK, ContentLength: 0, PieceLength: 4 << 20}, true},
		{"not found", &pb.SyncHeader{Status: pb.Status_STATUS_NOT_FOUND}, true},
		{"zero piece length", &pb.SyncHeader{Status: pb.Status_STATUS_OK, ContentLength: 100}, false},
		{"2^63 length", &pb.SyncHeader{Status: pb.Status_STATUS_OK, ContentLength: 1 << 63, PieceLength: 1 << 20}, false},
		{"odd piece length", &pb.SyncHeader{Status: pb.Status_STATUS_OK, ContentLength: 100, PieceLength: 1000}, false},
		{"too many pieces", &pb.SyncHeader{Status: pb.Status_STATUS_OK, ContentLength: 1 << 40, PieceLength: 16 << 10}, false},
		{"bad digest", &pb.SyncHeader{Status: pb.Status_STATUS_OK, ContentLength: 100, PieceLength: 1 << 20, ContentDigest: []byte{1}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSyncHeader(tt.msg)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestParsePieceSet(t *testing.T) {
	d := SHA256(nil)
	many := make([]*pb.PieceInfo, MaxSyncPieces+1)
	for i := range many {
		many[i] = &pb.PieceInfo{Number: 0, Digest: d[:]}
	}
	tests := []struct {
		name string
		msg  *pb.PieceSet
		ok   bool
	}{
		{"ok", &pb.PieceSet{Pieces: []*pb.PieceInfo{{Number: 3, Digest: d[:]}}}, true},
		{"number at count", &pb.PieceSet{Pieces: []*pb.PieceInfo{{Number: 4, Digest: d[:]}}}, false},
		{"bad digest", &pb.PieceSet{Pieces: []*pb.PieceInfo{{Number: 1, Digest: d[:16]}}}, false},
		{"too many", &pb.PieceSet{Pieces: many}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePieceSet(tt.msg, 4)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// fuzzDecode feeds arbitrary bytes to ReadMsg + the matching Parse function:
// nothing may panic, and whatever parses must re-encode within the limit.
func fuzzDecode[M proto.Message](f *testing.F, newMsg func() M, max int, parse func(M) error, seeds ...proto.Message) {
	for _, s := range seeds {
		b, err := AppendMsg(nil, s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for i := 0; i < 8; i++ {
			m := newMsg()
			if err := ReadMsg(r, m, max); err != nil {
				return
			}
			if err := parse(m); err != nil {
				continue
			}
			if proto.Size(m) > max {
				t.Fatalf("accepted a %d-byte message over the %d limit", proto.Size(m), max)
			}
		}
	})
}

func FuzzPieceRequest(f *testing.F) {
	id := ContentTaskID(SHA256(nil))
	fuzzDecode(f, func() *pb.PieceRequest { return &pb.PieceRequest{} }, MaxPieceRequestSize,
		func(m *pb.PieceRequest) error { _, _, err := ParsePieceRequest(m); return err },
		&pb.PieceRequest{TaskId: id.Multihash(), Number: 7})
}

func FuzzPieceResponse(f *testing.F) {
	d := SHA256(nil)
	fuzzDecode(f, func() *pb.PieceResponse { return &pb.PieceResponse{} }, MaxPieceResponseSize,
		func(m *pb.PieceResponse) error { _, err := ParsePieceResponse(m); return err },
		&pb.PieceResponse{Status: pb.Status_STATUS_OK, Number: 1, Offset: 4 << 20, Length: 4 << 20, Digest: d[:]})
}

func FuzzSyncRequest(f *testing.F) {
	id := ContentTaskID(SHA256(nil))
	fuzzDecode(f, func() *pb.SyncRequest { return &pb.SyncRequest{} }, MaxSyncRequestSize,
		func(m *pb.SyncRequest) error { _, err := ParseSyncRequest(m); return err },
		&pb.SyncRequest{TaskId: id.Multihash()})
}

func FuzzSyncMessage(f *testing.F) {
	d := SHA256(nil)
	fuzzDecode(f, func() *pb.SyncMessage { return &pb.SyncMessage{} }, MaxSyncMessageSize,
		func(m *pb.SyncMessage) error {
			switch b := m.Body.(type) {
			case *pb.SyncMessage_Header:
				_, err := ParseSyncHeader(b.Header)
				return err
			case *pb.SyncMessage_Pieces:
				_, err := ParsePieceSet(b.Pieces, MaxPieces)
				return err
			case *pb.SyncMessage_End:
				_, _, err := ParseSyncEnd(b.End)
				return err
			}
			return ErrBadMessage
		},
		&pb.SyncMessage{Body: &pb.SyncMessage_Header{Header: &pb.SyncHeader{Status: pb.Status_STATUS_OK, ContentLength: 10 << 20, PieceLength: 4 << 20, ContentDigest: d[:]}}},
		&pb.SyncMessage{Body: &pb.SyncMessage_Pieces{Pieces: &pb.PieceSet{Pieces: []*pb.PieceInfo{{Number: 1, Digest: d[:]}}}}},
		&pb.SyncMessage{Body: &pb.SyncMessage_End{End: &pb.SyncEnd{Status: pb.Status_STATUS_OK}}})
}

func FuzzMemberMessages(f *testing.F) {
	fuzzDecode(f, func() *pb.MemberChallenge { return &pb.MemberChallenge{} }, MaxMemberMessageSize,
		func(m *pb.MemberChallenge) error { _, err := ParseMemberChallenge(m); return err },
		&pb.MemberChallenge{Nonce: make([]byte, 32)})
}

func FuzzMemberProof(f *testing.F) {
	fuzzDecode(f, func() *pb.MemberProof { return &pb.MemberProof{} }, MaxMemberMessageSize,
		func(m *pb.MemberProof) error { _, err := ParseMemberProof(m); return err },
		&pb.MemberProof{Mac: make([]byte, 32)})
}

func FuzzProviderEvent(f *testing.F) {
	id := ContentTaskID(SHA256(nil))
	fuzzDecode(f, func() *pb.ProviderEvent { return &pb.ProviderEvent{} }, MaxProviderEventSize,
		func(m *pb.ProviderEvent) error { _, _, err := ParseProviderEvent(m); return err },
		&pb.ProviderEvent{Kind: pb.ProviderEvent_KIND_WITHDRAW, TaskIds: [][]byte{id.Multihash()}})
}

func FuzzScheduleRequest(f *testing.F) {
	id := ContentTaskID(SHA256(nil))
	fuzzDecode(f, func() *pb.ScheduleRequest { return &pb.ScheduleRequest{} }, MaxScheduleRequestSize,
		func(m *pb.ScheduleRequest) error {
			switch b := m.Body.(type) {
			case *pb.ScheduleRequest_Host:
				_, err := ParseHostAnnounce(b.Host)
				return err
			case *pb.ScheduleRequest_Register:
				_, err := ParsePeerRegister(b.Register)
				return err
			case *pb.ScheduleRequest_Piece:
				_, err := ParsePieceResult(b.Piece, MaxPieces)
				return err
			case *pb.ScheduleRequest_Reschedule:
				_, err := ParsePeerIDs(b.Reschedule.GetBlocklist(), MaxBlocklist)
				return err
			}
			return nil
		},
		&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Host{Host: &pb.HostAnnounce{Hostname: "h", Location: "cn|zj|hz", Type: pb.HostType_HOST_TYPE_SEED}}},
		&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Register{Register: &pb.PeerRegister{TaskId: id.Multihash(), Kind: pb.TaskKind_TASK_KIND_URL,
			Url: "http://o/x", KnownLength: true, ContentLength: 10 << 20, PieceLength: 4 << 20, Held: []byte{5}}}},
		&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Piece{Piece: &pb.PieceResult{Number: 3, Success: true, Digest: id[:]}}})
}

func FuzzScheduleResponse(f *testing.F) {
	fuzzDecode(f, func() *pb.ScheduleResponse { return &pb.ScheduleResponse{} }, MaxScheduleResponseSize,
		func(m *pb.ScheduleResponse) error {
			if p := m.GetParents(); p != nil {
				_, err := ParseCandidates(p.GetCandidates(), MaxCandidates)
				return err
			}
			if p := m.GetProbe(); p != nil {
				_, err := ParseCandidates(p.GetTargets(), MaxProbeTargets)
				return err
			}
			return nil
		},
		&pb.ScheduleResponse{Body: &pb.ScheduleResponse_Parents{Parents: &pb.Parents{Candidates: []*pb.Candidate{{Peer: []byte("x"), Weight: 3}}}}})
}
