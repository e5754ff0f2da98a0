package storagetest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

var deleteTests = []test{
	{"WithOpenHandles", testDeleteOpen},
	{"ThenRecreate", testDeleteRecreate},
}

func testDeleteOpen(t *testing.T, e *env) {
	s := e.store()
	data := content(40, 3*pieceLen)
	spec := urlSpec(t, "delete", len(data))
	a := create(t, s, spec)
	b := open(t, s, spec.ID)
	writePiece(t, a, data, 0)
	reader, _, err := a.Piece(0)
	if err != nil {
		t.Fatal(err)
	}
	changed := b.Changed()
	if err := s.Delete(context.Background(), spec.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	waitChanged(t, "deletion", changed)
	cases := []struct {
		name string
		call func() error
	}{
		{"Err", a.Err},
		{"WritePiece", func() error {
			_, err := b.WritePiece(context.Background(), 1, protocol.Digest{}, bytes.NewReader(piece(t, spec.Layout, data, 1)))
			return err
		}},
		{"Piece", func() error { _, _, err := a.Piece(0); return err }},
		{"reader obtained before", func() error { _, err := io.ReadAll(reader); return err }},
		{"Complete", func() error { _, err := b.Complete(context.Background(), protocol.Digest{}); return err }},
		{"ReaderAt", func() error { _, err := b.ReaderAt(); return err }},
		{"SetOrigin", func() error { return b.SetOrigin(context.Background(), storage.Origin{ETag: "x"}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, tc.name, tc.call(), storage.ErrClosed) })
	}
	if a.Has(0) {
		t.Fatal("Has(0) true on a deleted task")
	}
	_, err = s.Stat(context.Background(), spec.ID)
	wantErr(t, "Stat", err, storage.ErrNotFound)
	_, err = s.Open(context.Background(), spec.ID)
	wantErr(t, "Open", err, storage.ErrNotFound)
	if u := s.Usage(); u.Tasks != 0 || u.Bytes != 0 {
		t.Fatalf("Usage after Delete = %+v", u)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testDeleteRecreate(t *testing.T, e *env) {
	s := e.store()
	data := content(41, 2*pieceLen)
	spec := urlSpec(t, "recreate", len(data))
	old := create(t, s, spec)
	writeAll(t, old, data)
	if err := s.Delete(context.Background(), spec.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// The old handle is still open; a new task under the same ID starts empty.
	fresh := create(t, s, spec)
	if v := fresh.Info().VerifiedPieces; v != 0 || fresh.Has(0) {
		t.Fatalf("recreated task has %d verified pieces", v)
	}
	writePiece(t, fresh, data, 1)
	old.Close()
	readPiece(t, fresh, data, 1)
	s = e.reopen()
	st, err := s.Stat(context.Background(), spec.ID)
	if err != nil || st.VerifiedPieces != 1 {
		t.Fatalf("after reopen Stat = %+v, %v", st, err)
	}
}
