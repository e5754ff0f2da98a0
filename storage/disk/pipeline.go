package disk

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Import pipeline tuning: chunks of pipeChunk bytes, pipeChunks of them in
// flight (8 MiB of buffers per import).
const (
	pipeChunk  = 1 << 20
	pipeChunks = 8
)

// hashed is the result of hashStream.
type hashed struct {
	pieces  []protocol.Digest
	content protocol.Digest
}

// chunk is one buffer travelling through the pipeline; it returns to the
// free list when both hashers are done with it.
type chunk struct {
	buf  []byte
	n    int
	refs atomic.Int32
}

var chunkPool = sync.Pool{New: func() any { return &chunk{buf: alignedBuf(pipeChunk)} }}

// directAlign is the alignment direct I/O needs for buffers, offsets and
// lengths (the largest logical block size in use).
const directAlign = 4096

// alignedBuf returns n bytes starting at a directAlign boundary.
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % directAlign); r != 0 {
		off = directAlign - r
	}
	return b[off : off+n : off+n]
}

// hashStream reads exactly layout.ContentLength bytes from r, hands each
// chunk to sink (which writes it to the staging file; nil for none) and
// computes the piece digests and the whole-content digest on two more
// goroutines, so the two sha256 passes run in parallel with the I/O.
// A stream of any other length fails with storage.ErrSizeChanged.
func hashStream(ctx context.Context, r io.Reader, layout protocol.Layout, sink func(p []byte, off int64) error, stop <-chan struct{}) (hashed, error) {
	free := make(chan *chunk, pipeChunks)
	for range pipeChunks {
		free <- chunkPool.Get().(*chunk)
	}
	defer func() {
		for range pipeChunks {
			chunkPool.Put(<-free)
		}
	}()
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			free <- c
		}
	}
	wholeCh := make(chan *chunk, pipeChunks)
	pieceCh := make(chan *chunk, pipeChunks)
	var res hashed
	var wg sync.WaitGroup
	wg.Go(func() {
		h := sha256.New()
		for c := range wholeCh {
			h.Write(c.buf[:c.n])
			release(c)
		}
		h.Sum(res.content[:0])
	})
	wg.Go(func() { res.pieces = hashPieces(layout, pieceCh, release) })

	err := feed(ctx, r, layout.ContentLength, sink, stop, free, wholeCh, pieceCh)
	close(wholeCh)
	close(pieceCh)
	wg.Wait()
	if err != nil {
		return hashed{}, err
	}
	return res, nil
}

// feed reads the stream into free chunks and passes each to both hashers.
func feed(ctx context.Context, r io.Reader, size int64, sink func([]byte, int64) error, stop <-chan struct{},
	free chan *chunk, wholeCh, pieceCh chan<- *chunk) error {
	var total int64
	for {
		if err := ctx.Err(); err != nil { // select below picks at random among ready cases
			return err
		}
		var c *chunk
		select {
		case c = <-free:
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return errStoreClosed
		}
		// Ask for at most one byte beyond size, to notice a longer stream.
		want := min(int64(len(c.buf)), size+1-total)
		n, rerr := io.ReadFull(r, c.buf[:want])
		total += int64(n)
		if total > size {
			free <- c
			return fmt.Errorf("%w: more than the declared %d bytes", storage.ErrSizeChanged, size)
		}
		if n > 0 && sink != nil {
			if err := sink(c.buf[:n], total-int64(n)); err != nil {
				free <- c
				return err
			}
		}
		if n > 0 {
			c.n = n
			c.refs.Store(2)
			wholeCh <- c
			pieceCh <- c
		} else {
			free <- c
		}
		switch {
		case errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF):
			if total < size {
				return fmt.Errorf("%w: %d bytes, declared %d", storage.ErrSizeChanged, total, size)
			}
			return nil
		case rerr != nil:
			return fmt.Errorf("read content: %w", rerr)
		}
	}
}

// hashPieces cuts the chunk stream at piece boundaries and returns the
// piece digests.
func hashPieces(layout protocol.Layout, in <-chan *chunk, release func(*chunk)) []protocol.Digest {
	count := layout.PieceCount()
	out := make([]protocol.Digest, 0, count)
	h := sha256.New()
	pieceLen := func(n uint32) int64 {
		_, l, err := layout.Piece(n)
		if err != nil {
			return 0
		}
		return int64(l)
	}
	rem := pieceLen(0)
	for c := range in {
		data := c.buf[:c.n]
		for len(data) > 0 && rem > 0 {
			k := min(rem, int64(len(data)))
			h.Write(data[:k])
			data, rem = data[k:], rem-k
			if rem == 0 {
				var d protocol.Digest
				h.Sum(d[:0])
				out = append(out, d)
				h.Reset()
				rem = pieceLen(uint32(len(out)))
			}
		}
		release(c)
	}
	return out
}
