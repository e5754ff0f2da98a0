package service_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/dynclient"
	"github.com/dragonfly-p2p/df/scheduler/resource"
	"github.com/dragonfly-p2p/df/scheduler/service"
)

// BenchmarkSummary measures the keepalive summary (taken under the
// service's lock) for a scheduler tracking n hosts, 1,000 of them listed.
func BenchmarkSummary(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprint(n, "-hosts"), func(b *testing.B) {
			st := resource.NewStore(resource.Limits{})
			now := time.Now()
			for i := range n {
				id := peer.ID(fmt.Sprint("host-", i))
				if _, err := st.UpsertHost(id, protocol.HostInfo{Hostname: fmt.Sprint("node-", i), IDC: "idc", Location: []string{"eu", "fra"},
					UploadCapacity: 1e9}, now.Add(time.Duration(i)*time.Millisecond)); err != nil {
					b.Fatal(err)
				}
			}
			svc := service.New(nil, st, nil)
			b.ReportAllocs()
			for b.Loop() {
				if s := svc.Summary(dynclient.MaxSummaryHosts); len(s.Hosts) != min(n, dynclient.MaxSummaryHosts) {
					b.Fatalf("%d hosts listed", len(s.Hosts))
				}
			}
		})
	}
}
