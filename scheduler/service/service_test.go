package service_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/admission"
	"github.com/dragonfly-p2p/df/protocol/dynclient"
	"github.com/dragonfly-p2p/df/protocol/p2p"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/scheduler"
	"github.com/dragonfly-p2p/df/testnet"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rig is a real scheduler and a raw admitted libp2p client speaking the
// schedule protocol by hand.
type rig struct {
	t      *testing.T
	sched  *scheduler.Scheduler
	client host.Host
}

func newRig(t *testing.T, edit func(*scheduler.Config)) *rig {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg := scheduler.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.OpsAddr = ""
	if edit != nil {
		edit(&cfg)
	}
	s, err := scheduler.New(cfg, scheduler.WithSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	g := p2p.NewGater()
	h, err := p2p.NewHost(t.TempDir(), g, p2p.WithListen("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	adm, err := admission.New(h, secret, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	gated := adm.GatedHost(h)
	var addrs []ma.Multiaddr
	for _, a := range s.Addrs() {
		addrs = append(addrs, ma.StringCast(strings.Split(a, "/p2p/")[0]))
	}
	if err := testnet.WaitFor(ctxT(t), 5*time.Millisecond, func() bool { return s.Ready() == nil }); err != nil {
		t.Fatal(err)
	}
	if err := gated.Connect(ctxT(t), peer.AddrInfo{ID: s.ID(), Addrs: addrs}); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, sched: s, client: gated}
}

type stream struct {
	t *testing.T
	s network.Stream
	r *bufio.Reader
}

func (r *rig) open() *stream {
	s, err := r.client.NewStream(ctxT(r.t), r.sched.ID(), protocol.ScheduleID)
	if err != nil {
		r.t.Fatal(err)
	}
	_ = s.SetDeadline(time.Now().Add(20 * time.Second))
	return &stream{t: r.t, s: s, r: bufio.NewReader(s)}
}

func (s *stream) send(m *pb.ScheduleRequest) {
	if err := protocol.WriteMsg(s.s, m); err != nil {
		s.t.Fatal(err)
	}
}

func (s *stream) recv() (*pb.ScheduleResponse, error) {
	var m pb.ScheduleResponse
	err := protocol.ReadMsg(s.r, &m, protocol.MaxScheduleResponseSize)
	return &m, err
}

func taskID(n int) []byte {
	return protocol.ContentTaskID(protocol.SHA256([]byte(fmt.Sprint("task", n)))).Multihash()
}

func announce(s *stream) {
	s.send(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Host{Host: &pb.HostAnnounce{Hostname: "h", Type: pb.HostType_HOST_TYPE_NORMAL}}})
}

func register(n int, url string) *pb.ScheduleRequest {
	return &pb.ScheduleRequest{Body: &pb.ScheduleRequest_Register{Register: &pb.PeerRegister{
		TaskId: taskID(n), Kind: pb.TaskKind_TASK_KIND_CONTENT, Url: url, KnownLength: true, ContentLength: 4 << 20, PieceLength: 1 << 20,
	}}}
}

// wantFailure reads until a failure (or an error) and checks its code.
func wantFailure(t *testing.T, s *stream, code pb.Failure_Code) {
	t.Helper()
	for {
		m, err := s.recv()
		if err != nil {
			if code == pb.Failure_CODE_UNSPECIFIED {
				return // the stream was closed: expected
			}
			t.Fatalf("stream ended without a failure: %v", err)
		}
		if f := m.GetFailure(); f != nil {
			if f.GetCode() != code {
				t.Fatalf("failure %v (%q), want %v", f.GetCode(), f.GetMessage(), code)
			}
			if f.GetMessage() == "" {
				t.Fatal("failure without an explanation")
			}
			return
		}
	}
}

func TestBadInput(t *testing.T) {
	r := newRig(t, nil)
	cases := []struct {
		name string
		msgs []*pb.ScheduleRequest
		want pb.Failure_Code
	}{
		{name: "first message is a piece result", msgs: []*pb.ScheduleRequest{{Body: &pb.ScheduleRequest_Piece{Piece: &pb.PieceResult{}}}},
			want: pb.Failure_CODE_BAD_REQUEST},
		{name: "registration with a malformed task ID", msgs: []*pb.ScheduleRequest{{Body: &pb.ScheduleRequest_Register{Register: &pb.PeerRegister{TaskId: []byte("junk")}}}},
			want: pb.Failure_CODE_BAD_REQUEST},
		{name: "absurd content length", msgs: []*pb.ScheduleRequest{{Body: &pb.ScheduleRequest_Register{Register: &pb.PeerRegister{
			TaskId: taskID(1), Kind: pb.TaskKind_TASK_KIND_CONTENT, KnownLength: true, ContentLength: 1 << 62, PieceLength: 1 << 20}}}},
			want: pb.Failure_CODE_BAD_REQUEST},
		{name: "absurd bandwidth", msgs: []*pb.ScheduleRequest{{Body: &pb.ScheduleRequest_Host{Host: &pb.HostAnnounce{
			Type: pb.HostType_HOST_TYPE_NORMAL, UploadCapacityBps: 1 << 62}}}},
			want: pb.Failure_CODE_BAD_REQUEST},
		{name: "piece number beyond the task", msgs: []*pb.ScheduleRequest{register(2, "http://o.example/f"),
			{Body: &pb.ScheduleRequest_Piece{Piece: &pb.PieceResult{Number: 99, Success: true, Digest: make([]byte, 32)}}}},
			want: pb.Failure_CODE_BAD_REQUEST},
		{name: "layout conflicting with the task's", msgs: []*pb.ScheduleRequest{register(3, "http://o.example/f"),
			{Body: &pb.ScheduleRequest_Register{Register: &pb.PeerRegister{TaskId: taskID(3), Kind: pb.TaskKind_TASK_KIND_CONTENT,
				KnownLength: true, ContentLength: 4 << 20, PieceLength: 2 << 20}}}},
			want: pb.Failure_CODE_BAD_REQUEST},
		{name: "re-registration for another task", msgs: []*pb.ScheduleRequest{register(4, "http://o.example/f"), register(5, "")},
			want: pb.Failure_CODE_BAD_REQUEST},
		{name: "blocklist too long", msgs: []*pb.ScheduleRequest{register(6, "http://o.example/f"),
			{Body: &pb.ScheduleRequest_Reschedule{Reschedule: &pb.PeerReschedule{Blocklist: make([][]byte, 65)}}}},
			want: pb.Failure_CODE_BAD_REQUEST},
		{name: "announce with a bad digest", msgs: []*pb.ScheduleRequest{{Body: &pb.ScheduleRequest_Announce{Announce: &pb.TaskAnnounce{
			TaskId: taskID(7), Kind: pb.TaskKind_TASK_KIND_CONTENT, ContentLength: 10, PieceLength: 1 << 20, ContentDigest: []byte{1}}}}},
			want: pb.Failure_CODE_BAD_REQUEST},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := r.open()
			defer s.s.Reset()
			for _, m := range tc.msgs {
				s.send(m)
			}
			wantFailure(t, s, tc.want)
		})
	}
	// The scheduler still serves after all that.
	s := r.open()
	s.send(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Ping{Ping: &pb.Ping{}}})
	if m, err := s.recv(); err != nil || m.GetPong() == nil {
		t.Fatalf("ping after bad input: %v %v", m, err)
	}
}

func TestHostIsTheStreamPeer(t *testing.T) {
	r := newRig(t, nil)
	s := r.open()
	announce(s)
	p := r.open()
	p.send(register(1, "http://o.example/f"))
	m, err := p.recv()
	if err != nil || m.GetBackToSource() == nil {
		t.Fatalf("first download of a URL task: %v %v", m, err)
	}
	// Stat lists the holder under the client's own peer ID: no message can
	// name another host.
	p.send(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Done{Done: &pb.PeerDone{Success: true, ContentDigest: make([]byte, 32)}}})
	var info *pb.TaskInfo
	err = testnet.WaitFor(ctxT(t), 20*time.Millisecond, func() bool {
		st := r.open()
		defer st.s.Close()
		st.send(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Stat{Stat: &pb.TaskStat{TaskId: taskID(1)}}})
		m, err := st.recv()
		info = m.GetTask()
		return err == nil && info.GetCompletePeers() == 1
	})
	if err != nil {
		t.Fatalf("stat never listed the finished download: %v", info)
	}
	if id, _ := peer.IDFromBytes(info.GetHolders()[0].GetPeer()); id != r.client.ID() {
		t.Fatalf("holder %s, want the client %s", id, r.client.ID())
	}
}

func TestThousandsOfTasksAreBounded(t *testing.T) {
	r := newRig(t, func(c *scheduler.Config) { c.Limits.MaxTasksPerHost = 50 })
	var open []*stream
	defer func() {
		for _, s := range open {
			s.s.Reset()
		}
	}()
	for i := range 2000 {
		s := r.open()
		open = append(open, s)
		s.send(register(i, "http://o.example/f"))
		m, err := s.recv()
		if err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
		if f := m.GetFailure(); f != nil {
			if i < 50 || f.GetCode() != pb.Failure_CODE_TOO_MANY {
				t.Fatalf("task %d: failure %v %q", i, f.GetCode(), f.GetMessage())
			}
			t.Logf("task %d refused: %s", i, f.GetMessage())
			return
		}
	}
	t.Fatal("2000 registrations accepted with a limit of 50")
}

// The manager's application rules give a priority to downloads whose
// request names none: by application name, else by URL pattern.
func TestApplicationRules(t *testing.T) {
	r := newRig(t, nil)
	bad := []dynclient.Application{{Name: "x", URLPatterns: []string{"("}, Priority: 1}}
	if err := r.sched.SetApplications(bad); err == nil {
		t.Fatal("a pattern that does not compile was accepted")
	}
	if err := r.sched.SetApplications([]dynclient.Application{{Name: "x", Priority: 9}}); err == nil {
		t.Fatal("priority 9 was accepted")
	}
	err := r.sched.SetApplications([]dynclient.Application{
		{Name: "blocked", URLPatterns: []string{`^https://blocked\.example/`}, Priority: 1},
		{Name: "models", URLPatterns: []string{`\.bin$`}, Priority: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := r.open()
	announce(s)
	cases := []struct {
		name string
		n    int
		url  string
		prio uint32
		want pb.Failure_Code // UNSPECIFIED: back to source
	}{
		{name: "URL pattern forbids", n: 11, url: "https://blocked.example/a", want: pb.Failure_CODE_FORBIDDEN},
		{name: "request's own priority wins", n: 12, url: "https://blocked.example/b", prio: 6},
		{name: "no rule applies", n: 13, url: "https://other.example/a"},
		{name: "P2P only: nobody has it", n: 14, url: "https://other.example/model.bin", want: pb.Failure_CODE_RETRY_LIMIT},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := r.open()
			defer p.s.Close()
			m := register(tc.n, tc.url)
			m.GetRegister().Priority = tc.prio
			p.send(m)
			if tc.want != pb.Failure_CODE_UNSPECIFIED {
				wantFailure(t, p, tc.want)
				return
			}
			resp, err := p.recv()
			if err != nil || resp.GetBackToSource() == nil {
				t.Fatalf("want back-to-source, got %v %v", resp, err)
			}
		})
	}
}
