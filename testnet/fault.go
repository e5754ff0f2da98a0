package testnet

import (
	"context"
	"io"

	"github.com/dragonfly-p2p/df/node/upload"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Faults a node's upload service can be given (node.WithUploadStore).

// Corrupt makes a peer serve every piece with its first byte flipped, while
// announcing the right digests: a lying parent.
func Corrupt(s upload.Store) upload.Store {
	return faultStore{s, func(r io.Reader) io.Reader { return &flipFirst{r: r} }}
}

// Stall makes a peer announce pieces and then send none of their bytes
// until release is closed.
func Stall(release <-chan struct{}) func(upload.Store) upload.Store {
	return func(s upload.Store) upload.Store {
		return faultStore{s, func(io.Reader) io.Reader { return blockingReader{release} }}
	}
}

type faultStore struct {
	upload.Store
	wrap func(io.Reader) io.Reader
}

func (f faultStore) Open(ctx context.Context, id protocol.TaskID) (storage.Task, error) {
	t, err := f.Store.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	return faultTask{t, f.wrap}, nil
}

type faultTask struct {
	storage.Task
	wrap func(io.Reader) io.Reader
}

func (f faultTask) Piece(n uint32) (io.Reader, protocol.PieceInfo, error) {
	r, info, err := f.Task.Piece(n)
	if err != nil {
		return r, info, err
	}
	return f.wrap(r), info, nil
}

type flipFirst struct {
	r    io.Reader
	done bool
}

func (f *flipFirst) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if n > 0 && !f.done {
		b[0] ^= 0xff
		f.done = true
	}
	return n, err
}

// blockingReader blocks until released, then fails.
type blockingReader struct{ release <-chan struct{} }

func (b blockingReader) Read([]byte) (int, error) {
	<-b.release
	return 0, io.ErrUnexpectedEOF
}
