package schedclient

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dragonfly-p2p/df/protocol/pb"
)

// TestSendDropsAdvisoryWhenFull: a piece report that finds the session's
// queue full is dropped and counted; a request that must reach the
// scheduler waits instead (here until the session ends).
func TestSendDropsAdvisoryWhenFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := &Client{reg: reg}
	c.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped_total", Help: "test"})
	reg.MustRegister(c.dropped)
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{c: c, out: make(chan *pb.ScheduleRequest, 2), ctx: ctx, cancel: cancel}

	for range 5 {
		s.send(&pb.ScheduleRequest{}, true)
	}
	if got := len(s.out); got != 2 {
		t.Fatalf("queued %d reports, want the queue's 2", got)
	}
	if got := counterValue(t, c.dropped); got != 3 {
		t.Fatalf("dropped counter = %v, want 3", got)
	}

	sent := make(chan struct{})
	go func() {
		s.send(&pb.ScheduleRequest{}, false)
		close(sent)
	}()
	<-s.out // room for the must-send request
	<-sent
	if got := len(s.out); got != 2 {
		t.Fatalf("must-send request not queued: %d in the queue", got)
	}
	if got := counterValue(t, c.dropped); got != 3 {
		t.Fatalf("must-send request counted as dropped: %v", got)
	}
	cancel()
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
