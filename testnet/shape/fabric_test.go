package shape

import (
	"net"
	"testing"
	"time"
)

// Hosts in two groups: traffic inside a group is counted as such and not
// paced by the shared link; traffic to the other group is counted apart
// and paced to the shared link's rate.
func TestFabricCountsAndPacesByGroup(t *testing.T) {
	const rate = 1 << 20 // 1 MiB/s between groups
	f := NewFabric(2, rate)
	open := func(group int) net.PacketConn {
		l := NewLink(Spec{})
		l.Join(f, group)
		pc, err := l.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	a0, b0, a1 := open(0), open(0), open(1)
	if g, ok := f.Group(a1.LocalAddr()); !ok || g != 1 {
		t.Fatalf("group of a1 = %d, %v; want 1", g, ok)
	}
	if _, ok := f.Group(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}); ok {
		t.Fatal("an unknown address has a group")
	}
	pkt := make([]byte, 1200)
	tests := []struct {
		name     string
		to       net.Addr
		from, dg int
		paced    bool
	}{
		{"inside group 0", b0.LocalAddr(), 0, 0, false},
		{"group 0 to group 1", a1.LocalAddr(), 0, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.Bytes(tt.from, tt.dg)
			const n = 400 // 480 kB: ~0.45 s at 1 MiB/s
			start := time.Now()
			for range n {
				if _, err := a0.WriteTo(pkt, tt.to); err != nil {
					t.Fatal(err)
				}
			}
			took := time.Since(start)
			sent := f.Bytes(tt.from, tt.dg) - before
			dropped := f.Dropped(tt.from, tt.dg)
			if sent+dropped*int64(len(pkt)) != n*int64(len(pkt)) {
				t.Fatalf("counted %d bytes sent + %d packets dropped, want %d bytes in all", sent, dropped, n*len(pkt))
			}
			if tt.paced && took < 200*time.Millisecond {
				t.Fatalf("%d bytes crossed a 1 MiB/s link in %v", sent, took)
			}
			// Not by the clock (a loaded CI machine is slow anyway): traffic
			// inside a group never takes from the pair's shared bucket.
			b := f.inter[tt.from*f.groups+tt.dg]
			b.mu.Lock()
			used := !b.next.IsZero()
			b.mu.Unlock()
			if !tt.paced && (used || dropped != 0) {
				t.Fatalf("traffic inside a group was paced: shared bucket used %v, %d dropped", used, dropped)
			}
		})
	}
	if f.Bytes(1, 0) != 0 || f.Bytes(5, 0) != 0 {
		t.Fatal("bytes counted for a pair that sent nothing")
	}
}
