package service

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
)

// conn writes a stream's responses from its own goroutine, so that
// decisions made under the service lock never wait on a slow node.
type conn struct {
	s       network.Stream
	out     chan *pb.ScheduleResponse
	done    chan struct{}
	once    sync.Once
	pending atomic.Int64 // queued or being written
}

func newConn(s network.Stream, queue int) *conn {
	c := &conn{s: s, out: make(chan *pb.ScheduleResponse, queue), done: make(chan struct{})}
	go c.writeLoop()
	return c
}

// push queues m; false when the stream is gone or its queue is full (the
// node is not reading: it will be dropped).
func (c *conn) push(m *pb.ScheduleResponse) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	c.pending.Add(1)
	select {
	case c.out <- m:
		return true
	default:
		c.pending.Add(-1)
		c.close()
		return false
	}
}

func (c *conn) writeLoop() {
	for {
		select {
		case m := <-c.out:
			_ = c.s.SetWriteDeadline(time.Now().Add(10 * time.Second))
			err := protocol.WriteMsg(c.s, m)
			c.pending.Add(-1)
			if err != nil {
				c.close()
				return
			}
		case <-c.done:
			return
		}
	}
}

// end closes the stream once the queued responses are written (waiting
// at most d): a graceful close delivers them, where a reset may discard
// them before the node has read them (a refused registration then reached
// the node as a bare stream reset instead of its reason). Past d, it
// resets.
func (c *conn) end(d time.Duration) {
	c.flush(d)
	c.shut(c.pending.Load() > 0)
}

// flush waits (bounded) until queued responses are written.
func (c *conn) flush(d time.Duration) {
	deadline := time.Now().Add(d)
	for c.pending.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-c.done:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// close resets the stream at once.
func (c *conn) close() { c.shut(true) }

// shut stops the write loop and resets or closes the stream, once.
func (c *conn) shut(reset bool) {
	c.once.Do(func() {
		close(c.done)
		if reset {
			_ = c.s.Reset()
		} else {
			_ = c.s.Close()
		}
	})
}
