package shape

import (
	"net"
	"testing"
	"time"
)

func TestBucketPacesToItsRate(t *testing.T) {
	if testing.Short() {
		t.Skip("paces for half a second")
	}
	const rate = 2 << 20 // 2 MiB/s
	b := NewBucket(rate)
	start := time.Now()
	sent := 0
	for sent < rate/2 {
		b.Wait(1200)
		sent += 1200
	}
	got := float64(sent) / time.Since(start).Seconds()
	// Loose bounds: a correctness check of the pacing, not a benchmark.
	if got > 1.3*rate || got < 0.6*rate {
		t.Fatalf("paced %.0f B/s, want about %d", got, rate)
	}
}

func TestUnlimitedBucketNeverWaits(t *testing.T) {
	b := NewBucket(0)
	start := time.Now()
	for range 100_000 {
		b.Wait(1 << 20)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("an unlimited bucket waited %v", d)
	}
}

func TestLossDropsPackets(t *testing.T) {
	cases := []struct {
		name string
		loss float64
		lo   int
		hi   int
	}{
		{"none", 0, 1000, 1000},
		{"half", 0.5, 350, 650},
		{"all", 1, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, rx := loopbackUDP(t), loopbackUDP(t)
			l := NewLink(Spec{Loss: tc.loss})
			tx := l.PacketConn(a)
			count := make(chan int)
			go func() { // read while sending: the socket buffer is small
				got := 0
				buf := make([]byte, 16)
				for {
					_ = rx.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
					if _, _, err := rx.ReadFrom(buf); err != nil {
						break
					}
					got++
				}
				count <- got
			}()
			for i := range 1000 {
				if _, err := tx.WriteTo([]byte("x"), rx.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			got := <-count
			if got < tc.lo || got > tc.hi {
				t.Fatalf("received %d of 1000 with loss %.1f", got, tc.loss)
			}
			_, _, dropped := l.Stats()
			if int(dropped)+got != 1000 {
				t.Fatalf("dropped %d + received %d != 1000", dropped, got)
			}
		})
	}
}

func TestLatencyDelaysDelivery(t *testing.T) {
	a, rx := loopbackUDP(t), loopbackUDP(t)
	tx := NewLink(Spec{Latency: 50 * time.Millisecond}).PacketConn(a)
	defer tx.Close()
	start := time.Now()
	if _, err := tx.WriteTo([]byte("x"), rx.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = rx.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	if _, _, err := rx.ReadFrom(buf); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("delivered after %v, want ≥ 50 ms", d)
	}
}

// loopbackUDP is a UDP socket on 127.0.0.1, closed when the test ends.
func loopbackUDP(t *testing.T) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
