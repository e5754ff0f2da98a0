package protocol

import (
	"errors"
	"strings"
	"testing"

	"github.com/dragonfly-p2p/df/protocol/pb"
)

func TestParsePreheatRequest(t *testing.T) {
	dg := "sha256:" + strings.Repeat("ab", 32)
	hdr := func(n, v string) *pb.PreheatHeader { return &pb.PreheatHeader{Name: n, Value: v} }
	many := make([]*pb.PreheatHeader, MaxPreheatHeaders+1)
	for i := range many {
		many[i] = hdr("X-A", "b")
	}
	big := []*pb.PreheatHeader{hdr("X-A", strings.Repeat("v", MaxPreheatHeaderBytes))}
	const u = "https://example.com/a.bin"
	tests := []struct {
		name string
		m    *pb.PreheatRequest
		ok   bool
	}{
		{"url preheat", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u}, true},
		{"digest preheat", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Digest: dg}, true},
		{"headers", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Headers: []*pb.PreheatHeader{hdr("authorization", "Bearer x")}}, true},
		{"stat by digest only", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_STAT, Digest: dg}, true},
		{"delete by url", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_DELETE, Url: u}, true},
		{"unknown op", &pb.PreheatRequest{Op: 9, Url: u}, false},
		{"unspecified op", &pb.PreheatRequest{Url: u}, false},
		{"preheat without url", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Digest: dg}, false},
		{"stat without anything", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_STAT}, false},
		{"file url", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: "file:///etc/shadow"}, false},
		{"gopher url", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: "gopher://x/"}, false},
		{"url too long", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u + "?" + strings.Repeat("a", MaxURLLength)}, false},
		{"url with newline", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u + "\n"}, false},
		{"md5 digest", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Digest: "md5:" + strings.Repeat("a", 32)}, false},
		{"short digest", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Digest: dg[:len(dg)-1]}, false},
		{"uppercase digest", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Digest: strings.ToUpper(dg)}, false},
		{"too many headers", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Headers: many}, false},
		{"headers too large", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Headers: big}, false},
		{"header name with space", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Headers: []*pb.PreheatHeader{hdr("X A", "b")}}, false},
		{"header value with CRLF", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Headers: []*pb.PreheatHeader{hdr("X-A", "b\r\nX-B: c")}}, false},
		{"empty header name", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Headers: []*pb.PreheatHeader{hdr("", "b")}}, false},
		{"host header", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Headers: []*pb.PreheatHeader{hdr("host", "internal")}}, false},
		{"range header", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Headers: []*pb.PreheatHeader{hdr("Range", "bytes=0-1")}}, false},
		{"headers on stat", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_STAT, Url: u, Headers: []*pb.PreheatHeader{hdr("X-A", "b")}}, false},
		{"tag with control char", &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Tag: "a\x00"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParsePreheatRequest(tc.m)
			if tc.ok != (err == nil) {
				t.Fatalf("ok=%v, err=%v", tc.ok, err)
			}
			if err != nil {
				if !errors.Is(err, ErrBadMessage) {
					t.Fatalf("error %v is not ErrBadMessage", err)
				}
				return
			}
			if r.TaskID == (TaskID{}) {
				t.Fatal("no task ID derived")
			}
		})
	}
}

func TestPreheatTaskIDMatchesDfget(t *testing.T) {
	const u = "https://example.com/a.bin?b=1&a=2"
	r, err := ParsePreheatRequest(&pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Tag: "t"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := URLTask{URL: u, Tag: "t"}.ID()
	if err != nil {
		t.Fatal(err)
	}
	if r.TaskID != want {
		t.Fatalf("task ID %s, want %s (the one dfget derives)", r.TaskID, want)
	}
	d := SHA256([]byte("x"))
	r, err = ParsePreheatRequest(&pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: u, Digest: d.String()})
	if err != nil || r.TaskID != ContentTaskID(d) || !r.HasDigest {
		t.Fatalf("content task: %v %v", r.TaskID, err)
	}
}

func TestParsePreheatProgress(t *testing.T) {
	id := ContentTaskID(SHA256(nil))
	tests := []struct {
		name string
		m    *pb.PreheatProgress
		ok   bool
	}{
		{"running", &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_RUNNING, BytesDone: 5, Total: 10, TaskId: id.Multihash()}, true},
		{"failed", &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_FAILED, Error: "origin said 404"}, true},
		{"stat", &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_SUCCEEDED, CompletePeers: 2, Peers: []string{"12D3KooW"}}, true},
		{"unknown state", &pb.PreheatProgress{State: 42}, false},
		{"unspecified", &pb.PreheatProgress{}, false},
		{"done beyond total", &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_RUNNING, BytesDone: 11, Total: 10}, false},
		{"total beyond limit", &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_RUNNING, Total: 1 << 63}, false},
		{"bad task id", &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_RUNNING, TaskId: []byte{1, 2}}, false},
		{"long error", &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_FAILED, Error: strings.Repeat("e", MaxMessageLength+1)}, false},
		{"too many peers", &pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_SUCCEEDED, Peers: make([]string, MaxPreheatPeers+1)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePreheatProgress(tc.m)
			if tc.ok != (err == nil) {
				t.Fatalf("ok=%v, err=%v", tc.ok, err)
			}
		})
	}
}

func FuzzPreheatRequest(f *testing.F) {
	fuzzDecode(f, func() *pb.PreheatRequest { return &pb.PreheatRequest{} }, MaxPreheatRequestSize,
		func(m *pb.PreheatRequest) error { _, err := ParsePreheatRequest(m); return err },
		&pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: "https://example.com/x", Digest: SHA256(nil).String(),
			Headers: []*pb.PreheatHeader{{Name: "Authorization", Value: "Bearer t"}}},
		&pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_STAT, Digest: SHA256(nil).String()})
}

func FuzzPreheatProgress(f *testing.F) {
	id := ContentTaskID(SHA256(nil))
	fuzzDecode(f, func() *pb.PreheatProgress { return &pb.PreheatProgress{} }, MaxPreheatProgressSize,
		func(m *pb.PreheatProgress) error { _, err := ParsePreheatProgress(m); return err },
		&pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_RUNNING, TaskId: id.Multihash(), BytesDone: 1, Total: 2},
		&pb.PreheatProgress{State: pb.PreheatState_PREHEAT_STATE_SUCCEEDED, Peers: []string{"p"}, CompletePeers: 1})
}
