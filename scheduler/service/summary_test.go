package service_test

import (
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/protocol/dynclient"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/testnet"
)

// The keepalive summary comes from the scheduler's real resource store
// and traffic counters: a host announced over the schedule protocol, its
// download and the back-to-source piece it reports all show up.
func TestSummaryReportsHostsTasksAndTraffic(t *testing.T) {
	r := newRig(t, nil)
	if s := r.sched.Summary(10); s.HostCount != 0 || s.PeerBytes != 0 || s.SourceBytes != 0 || len(s.Hosts) != 0 || s.Started.IsZero() {
		t.Fatalf("fresh scheduler summary: %+v", s)
	}
	h := r.open()
	h.send(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Host{Host: &pb.HostAnnounce{Hostname: "node-a", Idc: "idc-1",
		Location: "eu|fra", Type: pb.HostType_HOST_TYPE_NORMAL, UploadCapacityBps: 1e9, UploadRateBps: 2e8, UploadsInFlight: 3}}})
	p := r.open()
	p.send(register(1, "http://o.example/f"))
	if m, err := p.recv(); err != nil || m.GetBackToSource() == nil {
		t.Fatalf("first download: %v %v", m, err)
	}
	p.send(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Piece{Piece: &pb.PieceResult{Number: 0, Success: true, Digest: make([]byte, 32)}}})
	var s dynclient.SchedulerSummary
	err := testnet.WaitFor(ctxT(t), 10*time.Millisecond, func() bool {
		s = r.sched.Summary(10)
		return s.SourceBytes == 1<<20 && len(s.Hosts) == 1 && s.Hosts[0].Hostname == "node-a"
	})
	if err != nil {
		t.Fatalf("summary never showed the host and its piece: %+v", s)
	}
	got := s.Hosts[0]
	if got.ID != r.client.ID().String() || got.IDC != "idc-1" || len(got.Location) != 2 || got.Location[1] != "fra" ||
		got.Type != dynclient.HostTypeNormal || got.UploadCapacity != 1e9 || got.UploadRate != 2e8 || got.InFlight != 3 ||
		got.Tasks != 1 || got.TasksDone != 0 || got.LastSeen.IsZero() {
		t.Fatalf("host summary: %+v", got)
	}
	if s.HostCount != 1 || s.TaskCount != 1 || s.PeerCount != 1 || s.PeerBytes != 0 || s.HostsTruncated {
		t.Fatalf("summary counts: %+v", s)
	}
	p.send(&pb.ScheduleRequest{Body: &pb.ScheduleRequest_Done{Done: &pb.PeerDone{Success: true, ContentDigest: make([]byte, 32)}}})
	err = testnet.WaitFor(ctxT(t), 10*time.Millisecond, func() bool {
		s = r.sched.Summary(10)
		return len(s.Hosts) == 1 && s.Hosts[0].TasksDone == 1
	})
	if err != nil {
		t.Fatalf("finished download not counted as held: %+v", s)
	}
	if s0 := r.sched.Summary(0); len(s0.Hosts) != 0 || !s0.HostsTruncated || s0.HostCount != 1 {
		t.Fatalf("summary capped at 0 hosts: %+v", s0)
	}
}
