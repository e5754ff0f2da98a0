package storagetest

import (
	"context"
	"testing"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

var taskTests = []test{
	{"CreateStatList", testCreateStatList},
	{"CreateInvalid", testCreateInvalid},
	{"CreateExisting", testCreateExisting},
	{"Missing", testMissing},
	{"HandlesShareState", testHandlesShareState},
	{"SetOrigin", testSetOrigin},
	{"ClosedStore", testClosedStore},
}

func testCreateStatList(t *testing.T, e *env) {
	s := e.store()
	data := content(1, 3*pieceLen+100)
	specs := []storage.Spec{urlSpec(t, "a", 3*pieceLen+100), contentSpec(t, data)}
	for _, spec := range specs {
		task := create(t, s, spec)
		info := task.Info()
		if info.ID != spec.ID || info.Kind != spec.Kind || info.Layout != spec.Layout || info.Origin != spec.Origin {
			t.Fatalf("Info() = %+v, spec %+v", info, spec)
		}
		if info.Complete || info.VerifiedPieces != 0 || info.CreatedAt.IsZero() {
			t.Fatalf("new task Info() = %+v", info)
		}
		if spec.Kind == storage.KindContent && info.ContentDigest != spec.ContentDigest {
			t.Fatalf("content task digest %s, want %s", info.ContentDigest, spec.ContentDigest)
		}
		if spec.Kind == storage.KindURL && !info.ContentDigest.IsZero() {
			t.Fatalf("URL task digest %s before completion, want zero", info.ContentDigest)
		}
		st, err := s.Stat(context.Background(), spec.ID)
		if err != nil || st.ID != spec.ID || st.Layout != spec.Layout {
			t.Fatalf("Stat = %+v, %v", st, err)
		}
		if err := task.Err(); err != nil {
			t.Fatalf("Err() = %v on a fresh handle", err)
		}
	}
	list, err := s.List(context.Background())
	if err != nil || len(list) != len(specs) {
		t.Fatalf("List = %d tasks, %v; want %d", len(list), err, len(specs))
	}
	if u := s.Usage(); u.Tasks != 2 || u.Bytes != specs[0].Layout.ContentLength+specs[1].Layout.ContentLength {
		t.Fatalf("Usage = %+v", u)
	}
}

func testCreateInvalid(t *testing.T, e *env) {
	s := e.store()
	good := urlSpec(t, "x", pieceLen)
	cases := []struct {
		name   string
		mutate func(*storage.Spec)
	}{
		{"zero ID", func(sp *storage.Spec) { sp.ID = protocol.TaskID{} }},
		{"unknown kind", func(sp *storage.Spec) { sp.Kind = 0 }},
		{"kind out of range", func(sp *storage.Spec) { sp.Kind = 200 }},
		{"piece length not a power of two", func(sp *storage.Spec) { sp.Layout.PieceLength = pieceLen + 1 }},
		{"piece length too small", func(sp *storage.Spec) { sp.Layout.PieceLength = 1024 }},
		{"negative size", func(sp *storage.Spec) { sp.Layout.ContentLength = -1 }},
		{"size beyond the limit", func(sp *storage.Spec) { sp.Layout.ContentLength = protocol.MaxContentLength + 1 }},
		{"content digest is not the ID", func(sp *storage.Spec) {
			sp.Kind = storage.KindContent
			sp.ContentDigest = protocol.SHA256([]byte("other"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := good
			tc.mutate(&spec)
			if task, err := s.Create(context.Background(), spec); err == nil {
				task.Close()
				t.Fatalf("Create accepted %+v", spec)
			}
		})
	}
	if u := s.Usage(); u.Tasks != 0 || u.Bytes != 0 {
		t.Fatalf("rejected specs left state behind: %+v", u)
	}
}

func testCreateExisting(t *testing.T, e *env) {
	s := e.store()
	data := content(2, 2*pieceLen)
	spec := urlSpec(t, "exists", len(data))
	first := create(t, s, spec)
	writePiece(t, first, data, 1)

	other := spec
	other.Layout = layoutOf(t, len(data)+1)
	bigger := spec
	bigger.Layout.PieceLength *= 2
	withDigest := spec
	withDigest.ContentDigest = protocol.SHA256(data)
	cases := []struct {
		name    string
		spec    storage.Spec
		wantErr error
	}{
		{"same layout joins", spec, nil},
		{"same layout with a digest joins", withDigest, nil},
		{"other content length", other, storage.ErrExists},
		{"other piece length", bigger, storage.ErrExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task, err := s.Create(context.Background(), tc.spec)
			if tc.wantErr != nil {
				wantErr(t, "Create", err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			defer task.Close()
			if !task.Has(1) || task.Has(0) || task.Info().VerifiedPieces != 1 {
				t.Fatalf("joined task does not share pieces: Has(0)=%v Has(1)=%v info=%+v", task.Has(0), task.Has(1), task.Info())
			}
		})
	}

	// A complete task rejects a different content digest.
	writePiece(t, first, data, 0)
	if _, err := first.Complete(context.Background(), protocol.Digest{}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	wrong := spec
	wrong.ContentDigest = protocol.SHA256([]byte("not the content"))
	_, err := s.Create(context.Background(), wrong)
	wantErr(t, "Create with another digest", err, storage.ErrExists)
}

func testMissing(t *testing.T, e *env) {
	s := e.store()
	id := urlID("missing")
	cases := []struct {
		name string
		call func() error
	}{
		{"Open", func() error { _, err := s.Open(context.Background(), id); return err }},
		{"Stat", func() error { _, err := s.Stat(context.Background(), id); return err }},
		{"Delete", func() error { return s.Delete(context.Background(), id) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, tc.name, tc.call(), storage.ErrNotFound) })
	}
}

func testHandlesShareState(t *testing.T, e *env) {
	s := e.store()
	data := content(3, 2*pieceLen)
	spec := urlSpec(t, "shared", len(data))
	a := create(t, s, spec)
	b := open(t, s, spec.ID)
	writePiece(t, a, data, 0)
	if !b.Has(0) {
		t.Fatal("piece written through one handle is not visible through another")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wantErr(t, "closed handle Err", a.Err(), storage.ErrClosed)
	_, err := a.WritePiece(context.Background(), 1, protocol.Digest{}, nil)
	wantErr(t, "WritePiece on a closed handle", err, storage.ErrClosed)
	writePiece(t, b, data, 1)
	readPiece(t, b, data, 0)
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func testSetOrigin(t *testing.T, e *env) {
	s := e.store()
	spec := urlSpec(t, "origin", pieceLen)
	task := create(t, s, spec)
	o := storage.Origin{URL: spec.Origin.URL, ETag: `"v2"`, LastModified: "Mon, 02 Jan 2006 15:04:05 GMT"}
	if err := task.SetOrigin(context.Background(), o); err != nil {
		t.Fatalf("SetOrigin: %v", err)
	}
	if got := task.Info().Origin; got != o {
		t.Fatalf("Info().Origin = %+v, want %+v", got, o)
	}
	task.Close()
	s = e.reopen()
	st, err := s.Stat(context.Background(), spec.ID)
	if err != nil || st.Origin != o {
		t.Fatalf("after reopen Stat = %+v, %v; want origin %+v", st.Origin, err, o)
	}
}

func testClosedStore(t *testing.T, e *env) {
	s := e.store()
	data := content(4, pieceLen)
	task := create(t, s, urlSpec(t, "closed", len(data)))
	changed := task.Changed()
	e.close()
	waitChanged(t, "store Close", changed)
	wantErr(t, "handle Err", task.Err(), storage.ErrClosed)
	_, err := task.WritePiece(context.Background(), 0, protocol.Digest{}, nil)
	wantErr(t, "WritePiece", err, storage.ErrClosed)
	_, err = s.Open(context.Background(), task.Info().ID)
	wantErr(t, "Open", err, storage.ErrClosed)
	_, err = s.Create(context.Background(), urlSpec(t, "other", pieceLen))
	wantErr(t, "Create", err, storage.ErrClosed)
	_, err = s.List(context.Background())
	wantErr(t, "List", err, storage.ErrClosed)
	if err := task.Close(); err != nil {
		t.Fatalf("handle Close after store Close: %v", err)
	}
}
