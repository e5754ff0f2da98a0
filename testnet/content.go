package testnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Payload returns n deterministic pseudo-random bytes (a different stream
// for every seed).
func Payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// Fetch streams a download or export to memory and waits for its verdict
// (pass the result of Node.Download or Node.Export directly).
func Fetch(ctx context.Context, c api.Content, err error) ([]byte, error) {
	var buf bytes.Buffer
	if err := stream(ctx, c, err, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// FetchDigest streams a download or export through SHA-256 and waits for
// its verdict, returning the digest of the bytes served: what a swarm of
// large downloads checks without holding every copy in memory (growing a
// buffer per host took a quarter of a 16-host benchmark's CPU).
func FetchDigest(ctx context.Context, c api.Content, err error) ([sha256.Size]byte, error) {
	h := sha256.New()
	var sum [sha256.Size]byte
	if err := stream(ctx, c, err, h); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// stream writes all of c to w once it is ready, then waits for its verdict.
func stream(ctx context.Context, c api.Content, err error, w io.Writer) error {
	if err != nil {
		return err
	}
	defer c.Release()
	select {
	case <-c.Ready():
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := c.Err(); err != nil {
		return err
	}
	if _, err := c.WriteTo(ctx, w, 0, c.Layout().ContentLength); err != nil {
		return err
	}
	return c.Wait(ctx)
}

// ImportBytes imports data as a content task with the given piece length
// and returns its task ID, checking it is the data's digest.
func (n *Node) ImportBytes(ctx context.Context, data []byte, pieceLength uint32) (protocol.TaskID, error) {
	info, err := n.Import(ctx, api.ImportRequest{Kind: storage.KindContent, Size: int64(len(data)), PieceLength: pieceLength}, bytes.NewReader(data))
	if err != nil {
		return protocol.TaskID{}, err
	}
	id, err := protocol.ParseTaskID(info.ID)
	if err != nil {
		return id, err
	}
	if want := protocol.ContentTaskID(protocol.SHA256(data)); id != want {
		return id, fmt.Errorf("import returned task %s, want the content digest %s", id, want)
	}
	return id, nil
}
