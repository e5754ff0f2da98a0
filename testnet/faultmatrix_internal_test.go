package testnet

import (
	"bytes"
	"context"
	"io"
	"sync/atomic"
	"testing"

	"github.com/dragonfly-p2p/df/node/upload"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/storage/disk"
)

// The upload tap counts what it serves and catches bytes that do not
// match the verified digest: the check behind "nothing unverified was
// served" can fail.
func TestTapCatchesUnverifiedBytes(t *testing.T) {
	ctx := context.Background()
	st, err := disk.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	data := Payload(3<<14, 7)
	layout, err := protocol.NewLayout(int64(len(data)), 1<<14)
	if err != nil {
		t.Fatal(err)
	}
	id := protocol.ContentTaskID(protocol.SHA256(data))
	task, err := st.Create(ctx, storage.Spec{ID: id, Kind: storage.KindContent, Layout: layout, ContentDigest: protocol.SHA256(data)})
	if err != nil {
		t.Fatal(err)
	}
	for n := range layout.PieceCount() {
		off, length, _ := layout.Piece(n)
		if _, err := task.WritePiece(ctx, n, protocol.SHA256(data[off:off+int64(length)]), bytes.NewReader(data[off:off+int64(length)])); err != nil {
			t.Fatal(err)
		}
	}
	task.Close()
	for _, tt := range []struct {
		name    string
		lie     bool
		wantBad int64
	}{
		{"honest store", false, 0},
		{"store that flips a byte under the tap", true, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var served, bad atomic.Int64
			inner := upload.Store(st)
			if tt.lie {
				inner = Corrupt(inner)
			}
			tap := tapStore{Store: inner, served: &served, bad: &bad}
			opened, err := tap.Open(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			defer opened.Close()
			for n := range layout.PieceCount() {
				r, _, err := opened.Piece(n)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					t.Fatal(err)
				}
			}
			if served.Load() != 3 || bad.Load() != tt.wantBad {
				t.Fatalf("served %d, bad %d; want 3, %d", served.Load(), bad.Load(), tt.wantBad)
			}
		})
	}
}
