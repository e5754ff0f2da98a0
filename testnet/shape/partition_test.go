package shape

import (
	"net"
	"testing"
	"time"
)

// A partition drops every packet between the two groups (both ways) and
// none inside a group; healing lets packets through again.
func TestFabricPartition(t *testing.T) {
	f := NewFabric(2, 0)
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
	received := func(from, to net.PacketConn) bool {
		if _, err := from.WriteTo([]byte("ping"), to.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		_ = to.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 16)
		_, _, err := to.ReadFrom(buf)
		return err == nil
	}
	f.Partition(0, 1, true)
	for _, tt := range []struct {
		name     string
		from, to net.PacketConn
		want     bool
	}{
		{"inside group 0", a0, b0, true},
		{"group 0 to 1", a0, a1, false},
		{"group 1 to 0", a1, b0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := received(tt.from, tt.to); got != tt.want {
				t.Fatalf("received = %v, want %v", got, tt.want)
			}
		})
	}
	if f.Dropped(0, 1) == 0 || f.Dropped(1, 0) == 0 {
		t.Fatalf("dropped 0→1 %d, 1→0 %d: a partition counts its drops", f.Dropped(0, 1), f.Dropped(1, 0))
	}
	f.Partition(0, 1, false)
	if !received(a0, a1) || !received(a1, a0) {
		t.Fatal("healed partition still drops packets")
	}
	f.Partition(0, 0, true) // a group cannot be cut from itself: ignored
	f.Partition(-1, 5, true)
	if !received(a0, b0) {
		t.Fatal("an invalid partition cut a group")
	}
}
