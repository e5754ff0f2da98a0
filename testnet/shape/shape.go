// Package shape shapes a simulated host's network link in userspace:
// bandwidth per direction (token buckets shared by all the host's flows),
// one-way latency and random loss. This kernel has no netem, so testnet
// wraps the UDP socket QUIC uses (p2p.WithListenUDP) and the TCP listener
// of HTTP origins instead.
//
// The uplink of a packet socket is a bottleneck with a bounded queue
// (100 ms): writes are paced, and a packet that would wait longer is
// dropped. The downlink paces reads, with the socket's receive buffer
// (~100 ms at the link's rate) as the queue in front of the host. QUIC's
// congestion control sees both as it would real bottlenecks. Stream
// connections (the origin's TCP) are paced without drops. Latency is added
// on send.
package shape

import (
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Spec describes a link. Zero values mean unlimited / none.
type Spec struct {
	// Up and Down are bytes per second.
	Up, Down int64
	// Latency is added to every packet sent (one way).
	Latency time.Duration
	// Loss is the probability (0..1) that a sent packet is dropped.
	Loss float64
}

// Mbit converts megabits per second to bytes per second.
func Mbit(m float64) int64 { return int64(m * 1e6 / 8) }

// Link is one host's shaped link.
type Link struct {
	up, down *Bucket
	latency  atomic.Int64
	loss     atomic.Uint64 // probability × 2^32
	sent     atomic.Int64
	received atomic.Int64
	dropped  atomic.Int64
	fabric   atomic.Pointer[membership] // set by Join
}

// NewLink returns a link shaped by spec.
func NewLink(spec Spec) *Link {
	l := &Link{up: NewBucket(spec.Up), down: NewBucket(spec.Down)}
	l.Set(spec)
	return l
}

// Set changes the link's shape at run time (e.g. to slow it).
func (l *Link) Set(spec Spec) {
	l.up.SetRate(spec.Up)
	l.down.SetRate(spec.Down)
	l.latency.Store(int64(spec.Latency))
	l.loss.Store(uint64(min(max(spec.Loss, 0), 1) * (1 << 32)))
}

// Stats returns bytes sent and received through the link and packets
// dropped by loss.
func (l *Link) Stats() (sent, received, dropped int64) {
	return l.sent.Load(), l.received.Load(), l.dropped.Load()
}

func (l *Link) lose() bool {
	p := l.loss.Load()
	return p > 0 && rand.Uint64N(1<<32) < p
}

// ListenUDP opens a shaped UDP socket (for p2p.WithListenUDP).
func (l *Link) ListenUDP(network string, laddr *net.UDPAddr) (net.PacketConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	// The receive buffer is the downlink's queue: keep it near a router's
	// (~100 ms at the link's rate) so that overload shows as loss and
	// delay a congestion controller can act on, not seconds of bufferbloat.
	_ = c.SetReadBuffer(l.queueBytes())
	_ = c.SetWriteBuffer(4 << 20)
	if m := l.fabric.Load(); m != nil {
		m.f.Register(c.LocalAddr(), m.group)
	}
	return l.PacketConn(c), nil
}

// queueDelay is how long a packet may wait for the uplink before it is
// dropped: the queue a router in front of the host would have.
func (l *Link) queueDelay() time.Duration { return uplinkQueue }

// uplinkQueue is the queue of a router in front of a constrained link.
const uplinkQueue = 100 * time.Millisecond

func (l *Link) queueBytes() int {
	rate := l.down.Rate()
	if rate == 0 {
		return 4 << 20
	}
	return int(max(64<<10, rate/10))
}

// PacketConn wraps a packet socket.
func (l *Link) PacketConn(pc net.PacketConn) net.PacketConn {
	c := &packetConn{PacketConn: pc, l: l, queue: make(chan delayed, 4096), done: make(chan struct{})}
	go c.deliver()
	return c
}

type delayed struct {
	at   time.Time
	b    []byte
	addr net.Addr
}

type packetConn struct {
	net.PacketConn
	l     *Link
	queue chan delayed
	done  chan struct{}
	once  sync.Once
}

func (c *packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	// The uplink is a bottleneck with a bounded queue (like a router's):
	// a packet that would wait longer than the queue holds is dropped, so
	// congestion control sees loss and keeps the queue short, and ACKs of
	// the host's downloads are not stuck behind seconds of its uploads.
	if !c.l.up.WaitUpTo(len(b), c.l.queueDelay()) {
		c.l.dropped.Add(1)
		return len(b), nil
	}
	c.l.sent.Add(int64(len(b)))
	if c.l.lose() {
		c.l.dropped.Add(1)
		return len(b), nil
	}
	if m := c.l.fabric.Load(); m != nil && !m.f.pass(m.group, addr, len(b)) {
		c.l.dropped.Add(1) // the shared inter-group link's queue is full
		return len(b), nil
	}
	lat := time.Duration(c.l.latency.Load())
	if lat <= 0 {
		return c.PacketConn.WriteTo(b, addr)
	}
	select {
	case c.queue <- delayed{at: time.Now().Add(lat), b: append([]byte(nil), b...), addr: addr}:
	case <-c.done:
		return 0, net.ErrClosed
	default:
		c.l.dropped.Add(1) // the delay line is full: tail drop
	}
	return len(b), nil
}

func (c *packetConn) deliver() {
	for {
		select {
		case d := <-c.queue:
			if w := time.Until(d.at); w > 0 {
				time.Sleep(w)
			}
			_, _ = c.PacketConn.WriteTo(d.b, d.addr)
		case <-c.done:
			return
		}
	}
}

func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if n > 0 {
		c.l.down.Wait(n)
		c.l.received.Add(int64(n))
	}
	return n, addr, err
}

// SetReadBuffer keeps the socket's receive buffer as the link sized it
// (it is the downlink's queue); QUIC asks for megabytes.
func (c *packetConn) SetReadBuffer(int) error { return nil }

// SyscallConn exposes the socket, which lets QUIC set the don't-fragment
// bit and so discover the path MTU as it does on an unshaped socket (1452-
// byte packets instead of 1280: a shaped link otherwise carried 0.6 % more
// header bytes per byte of content than a real one).
func (c *packetConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.PacketConn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// SetWriteBuffer is accepted and ignored likewise.
func (c *packetConn) SetWriteBuffer(int) error { return nil }

func (c *packetConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.PacketConn.Close()
}

// Listener shapes every accepted connection: writes take from the uplink,
// reads from the downlink (an HTTP origin's link).
func (l *Link) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, l: l} }

type listener struct {
	net.Listener
	l *Link
}

func (ln *listener) Accept() (net.Conn, error) {
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, l: ln.l}, nil
}

// Conn shapes one stream connection (a client's side of HTTP).
func (l *Link) Conn(c net.Conn) net.Conn { return &conn{Conn: c, l: l} }

type conn struct {
	net.Conn
	l *Link
}

const chunk = 16 << 10

func (c *conn) Write(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		n := min(chunk, len(b)-written)
		c.l.up.Wait(n)
		m, err := c.Conn.Write(b[written : written+n])
		written += m
		c.l.sent.Add(int64(m))
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func (c *conn) Read(b []byte) (int, error) {
	if len(b) > chunk {
		b = b[:chunk]
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.l.down.Wait(n)
		c.l.received.Add(int64(n))
	}
	return n, err
}

// Bucket paces bytes to a rate (a token bucket expressed as a virtual
// clock: each byte advances it by 1/rate; callers sleep until it is due,
// with a small burst allowance).
type Bucket struct {
	mu    sync.Mutex
	rate  float64 // bytes per second; 0 unlimited
	burst time.Duration
	next  time.Time
}

// NewBucket returns a bucket of rate bytes per second (0: unlimited).
func NewBucket(rate int64) *Bucket {
	b := &Bucket{}
	b.SetRate(rate)
	return b
}

// SetRate changes the rate.
func (b *Bucket) SetRate(rate int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rate = float64(max(rate, 0))
	// A burst of ~5 ms or 32 KiB, whichever is larger: small enough not to
	// distort the rate, large enough for the scheduler's sleep granularity.
	b.burst = 5 * time.Millisecond
	if b.rate > 0 {
		b.burst = max(b.burst, time.Duration(float64(32<<10)/b.rate*float64(time.Second)))
	}
}

// Rate returns the rate in bytes per second (0: unlimited).
func (b *Bucket) Rate() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int64(b.rate)
}

// WaitUpTo is Wait for a bounded queue: when n bytes would have to wait
// longer than max, it returns false at once and takes nothing.
func (b *Bucket) WaitUpTo(n int, max time.Duration) bool {
	b.mu.Lock()
	if b.rate == 0 {
		b.mu.Unlock()
		return true
	}
	now := time.Now()
	if floor := now.Add(-b.burst); b.next.Before(floor) {
		b.next = floor
	}
	next := b.next.Add(time.Duration(float64(n) / b.rate * float64(time.Second)))
	wait := next.Sub(now)
	if wait > max {
		b.mu.Unlock()
		return false
	}
	b.next = next
	b.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
	return true
}

// Wait blocks until n bytes may pass.
func (b *Bucket) Wait(n int) { b.WaitUpTo(n, math.MaxInt64) }
