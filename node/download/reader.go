package download

import (
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/dragonfly-p2p/df/storage"
)

// checkEvery is how often (in bytes) a piece transfer checks whether
// another parent already delivered the piece.
const checkEvery = 1 << 20

// pieceReader feeds one piece from a stream into the store: it extends the
// stream's idle deadline as bytes arrive, counts them, remembers the
// transport error (so a failed stream is not mistaken for a lying parent),
// and stops early when the piece was verified from elsewhere.
type pieceReader struct {
	r     io.Reader
	s     network.Stream
	idle  time.Duration
	task  storage.Task
	n     uint32
	count *atomic.Int64

	read      int64
	sinceMark int64
	err       error
	// claimed is when the store first read: before it, the store waited
	// for another copy of the piece being written (a hedge), which says
	// nothing about this parent's speed.
	claimed time.Time
}

func (p *pieceReader) Read(b []byte) (int, error) {
	if p.claimed.IsZero() {
		p.claimed = time.Now()
	}
	if p.sinceMark >= checkEvery {
		p.sinceMark = 0
		_ = p.s.SetReadDeadline(time.Now().Add(p.idle))
		if p.task.Has(p.n) {
			p.err = errPieceDone
			return 0, p.err
		}
	}
	n, err := p.r.Read(b)
	p.read += int64(n)
	p.sinceMark += int64(n)
	p.count.Add(int64(n))
	if err != nil && !errors.Is(err, io.EOF) {
		p.err = err
	}
	return n, err
}
