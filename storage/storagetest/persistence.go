package storagetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

var persistenceTests = []test{
	{"ReopenKeepsEverything", testReopen},
}

func testReopen(t *testing.T, e *env) {
	s := e.store()
	ctx := context.Background()
	complete := content(60, 3*pieceLen+5)
	partial := content(61, 4*pieceLen)
	imported := content(62, 2*pieceLen+1)

	ct := create(t, s, urlSpec(t, "complete", len(complete)))
	writeAll(t, ct, complete)
	want, err := ct.Complete(ctx, protocol.Digest{})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	imp, err := s.Import(ctx, storage.ImportSpec{Kind: storage.KindContent, Size: int64(len(imported))}, bytes.NewReader(imported))
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	empty := create(t, s, contentSpec(t, nil))
	if _, err := empty.Complete(ctx, protocol.Digest{}); err != nil {
		t.Fatalf("Complete empty: %v", err)
	}
	// Written last, with nothing after them that would flush: Close must.
	pt := create(t, s, urlSpec(t, "partial", len(partial)))
	writePiece(t, pt, partial, 3)
	writePiece(t, pt, partial, 1)
	before := s.Usage()

	s = e.reopen() // handles still open: Close must flush them
	if after := s.Usage(); after.Bytes != before.Bytes || after.Tasks != before.Tasks {
		t.Fatalf("Usage %+v after reopen, %+v before", after, before)
	}
	cases := []struct {
		name     string
		id       protocol.TaskID
		data     []byte
		complete bool
		pieces   []uint32
	}{
		{"completed download", want.ID, complete, true, nil},
		{"import", imp.ID, imported, true, nil},
		{"empty", protocol.ContentTaskID(protocol.SHA256(nil)), nil, true, nil},
		{"partial download", urlID("partial"), partial, false, []uint32{1, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := s.Stat(ctx, tc.id)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if st.Complete != tc.complete {
				t.Fatalf("Complete = %v, want %v", st.Complete, tc.complete)
			}
			task := open(t, s, tc.id)
			if tc.complete {
				if st.ContentDigest != protocol.SHA256(tc.data) || st.VerifiedPieces != st.Layout.PieceCount() {
					t.Fatalf("Stat = %+v", st)
				}
				if !bytes.Equal(readAll(t, task), tc.data) {
					t.Fatal("content differs after reopen")
				}
				return
			}
			if st.VerifiedPieces != uint32(len(tc.pieces)) {
				t.Fatalf("VerifiedPieces = %d, want %d", st.VerifiedPieces, len(tc.pieces))
			}
			for _, n := range tc.pieces {
				readPiece(t, task, tc.data, n)
			}
			// Resume: write the rest and complete.
			for n := range st.Layout.PieceCount() {
				if !task.Has(n) {
					writePiece(t, task, tc.data, n)
				}
			}
			if _, err := task.Complete(ctx, protocol.SHA256(tc.data)); err != nil {
				t.Fatalf("Complete after resume: %v", err)
			}
		})
	}
}
