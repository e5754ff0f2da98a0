package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

var importTests = []test{
	{"Kinds", testImportKinds},
	{"Failures", testImportFailures},
	{"Duplicate", testImportDuplicate},
	{"OverIncomplete", testImportOverIncomplete},
}

func testImportKinds(t *testing.T, e *env) {
	s := e.store()
	data := content(30, 5*pieceLen+99)
	digest := protocol.SHA256(data)
	named, err := protocol.NamedTaskID("storagetest", "v1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		spec   storage.ImportSpec
		wantID protocol.TaskID
	}{
		{"content", storage.ImportSpec{Kind: storage.KindContent, Size: int64(len(data)), PieceLength: pieceLen}, protocol.ContentTaskID(digest)},
		{"named", storage.ImportSpec{ID: named, Kind: storage.KindNamed, Size: int64(len(data)), PieceLength: pieceLen}, named},
		{"named, automatic piece length", storage.ImportSpec{ID: urlID("auto"), Kind: storage.KindNamed, Size: int64(len(data))}, urlID("auto")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info, err := s.Import(context.Background(), tc.spec, iotest.HalfReader(bytes.NewReader(data)))
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			if info.ID != tc.wantID || info.Kind != tc.spec.Kind || !info.Complete || info.ContentDigest != digest ||
				info.Layout.ContentLength != int64(len(data)) || info.VerifiedPieces != info.Layout.PieceCount() {
				t.Fatalf("Import = %+v", info)
			}
			if tc.spec.PieceLength == 0 && info.Layout.PieceLength != protocol.AutoPieceLength(int64(len(data))) {
				t.Fatalf("automatic piece length %d", info.Layout.PieceLength)
			}
			task := open(t, s, info.ID)
			ps, _ := task.Pieces(0)
			if len(ps) != int(info.Layout.PieceCount()) {
				t.Fatalf("Pieces = %d, want %d", len(ps), info.Layout.PieceCount())
			}
			for _, p := range ps {
				readPiece(t, task, data, p.Number)
			}
			if !bytes.Equal(readAll(t, task), data) {
				t.Fatal("imported content differs")
			}
		})
	}
}

func testImportFailures(t *testing.T, e *env) {
	s := e.store()
	data := content(31, 3*pieceLen)
	boom := errors.New("disk image unreadable")
	size := int64(len(data))
	cases := []struct {
		name    string
		spec    storage.ImportSpec
		r       io.Reader
		wantErr error
	}{
		{"shorter than declared", storage.ImportSpec{Kind: storage.KindContent, Size: size + 1}, bytes.NewReader(data), storage.ErrSizeChanged},
		{"longer than declared", storage.ImportSpec{Kind: storage.KindContent, Size: size - 1}, bytes.NewReader(data), storage.ErrSizeChanged},
		{"declared empty, not empty", storage.ImportSpec{Kind: storage.KindContent, Size: 0}, bytes.NewReader(data), storage.ErrSizeChanged},
		{"reader fails", storage.ImportSpec{Kind: storage.KindContent, Size: size}, io.MultiReader(bytes.NewReader(data[:100]), iotest.ErrReader(boom)), boom},
		{"named without ID", storage.ImportSpec{Kind: storage.KindNamed, Size: size}, bytes.NewReader(data), nil},
		{"unknown kind", storage.ImportSpec{Kind: 9, Size: size}, bytes.NewReader(data), nil},
		{"bad piece length", storage.ImportSpec{Kind: storage.KindContent, Size: size, PieceLength: 3}, bytes.NewReader(data), nil},
		{"negative size", storage.ImportSpec{Kind: storage.KindContent, Size: -1}, bytes.NewReader(nil), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Import(context.Background(), tc.spec, tc.r)
			if err == nil {
				t.Fatal("Import succeeded")
			}
			if tc.wantErr != nil {
				wantErr(t, "Import", err, tc.wantErr)
			}
			list, err := s.List(context.Background())
			if err != nil || len(list) != 0 {
				t.Fatalf("failed import left %d tasks visible (%v)", len(list), err)
			}
			if u := s.Usage(); u.Bytes != 0 || u.Tasks != 0 {
				t.Fatalf("failed import left usage %+v", u)
			}
		})
	}
	// Nothing of the failures survives a reopen either.
	s = e.reopen()
	if list, _ := s.List(context.Background()); len(list) != 0 {
		t.Fatalf("after reopen %d tasks", len(list))
	}
}

func testImportDuplicate(t *testing.T, e *env) {
	s := e.store()
	data := content(32, 2*pieceLen)
	spec := storage.ImportSpec{Kind: storage.KindContent, Size: int64(len(data)), PieceLength: pieceLen}
	first, err := s.Import(context.Background(), spec, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	spec.PieceLength = 2 * pieceLen // another layout: the stored copy wins
	second, err := s.Import(context.Background(), spec, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("second Import: %v", err)
	}
	if second.ID != first.ID || second.Layout != first.Layout || !second.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("second Import = %+v, want the existing %+v", second, first)
	}
	if u := s.Usage(); u.Tasks != 1 || u.Bytes != int64(len(data)) {
		t.Fatalf("Usage after a duplicate import = %+v", u)
	}
}

func testImportOverIncomplete(t *testing.T, e *env) {
	s := e.store()
	data := content(33, 2*pieceLen)
	spec := contentSpec(t, data)
	task := create(t, s, spec)
	writePiece(t, task, data, 0)
	if err := task.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := s.Import(context.Background(), storage.ImportSpec{Kind: storage.KindContent, Size: int64(len(data)), PieceLength: pieceLen}, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Import over an idle incomplete copy: %v", err)
	}
	if !info.Complete || info.ID != spec.ID {
		t.Fatalf("Import = %+v", info)
	}
	if u := s.Usage(); u.Tasks != 1 || u.Bytes != int64(len(data)) {
		t.Fatalf("Usage = %+v", u)
	}
}
