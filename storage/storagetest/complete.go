package storagetest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

var completeTests = []test{
	{"Digests", testCompleteDigests},
	{"Incomplete", testCompleteIncomplete},
	{"MismatchDiscards", testCompleteMismatchDiscards},
	{"ReaderAt", testReaderAt},
	{"EmptyTask", testEmptyTask},
	{"OutOfOrder", testCompleteOutOfOrder},
}

func testCompleteDigests(t *testing.T, e *env) {
	s := e.store()
	data := content(20, 3*pieceLen+7)
	digest := protocol.SHA256(data)
	cases := []struct {
		name string
		spec storage.Spec
		want protocol.Digest
	}{
		{"URL task, digest learnt", urlSpec(t, "learn", len(data)), protocol.Digest{}},
		{"URL task, digest given", urlSpec(t, "given", len(data)), digest},
		{"content task", contentSpec(t, data), protocol.Digest{}},
		{"URL task, digest in the spec", func() storage.Spec {
			sp := urlSpec(t, "spec-digest", len(data))
			sp.ContentDigest = digest
			return sp
		}(), digest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task := create(t, s, tc.spec)
			writeAll(t, task, data)
			info, err := task.Complete(context.Background(), tc.want)
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			if !info.Complete || info.ContentDigest != digest || info.CompletedAt.IsZero() || info.VerifiedPieces != info.Layout.PieceCount() {
				t.Fatalf("Complete = %+v", info)
			}
			if st, _ := s.Stat(context.Background(), tc.spec.ID); !st.Complete || st.ContentDigest != digest {
				t.Fatalf("Stat after Complete = %+v", st)
			}
			again, err := task.Complete(context.Background(), digest)
			if err != nil || !again.Complete {
				t.Fatalf("second Complete = %+v, %v", again, err)
			}
			_, err = task.Complete(context.Background(), protocol.SHA256([]byte("other")))
			wantErr(t, "Complete of a complete task with another digest", err, storage.ErrDigestMismatch)
			if !task.Info().Complete {
				t.Fatal("a wrong digest offered for a complete task undid it")
			}
			if !bytes.Equal(readAll(t, task), data) {
				t.Fatal("content differs")
			}
		})
	}
}

func testCompleteIncomplete(t *testing.T, e *env) {
	data := content(21, 3*pieceLen)
	task := create(t, e.store(), urlSpec(t, "incomplete", len(data)))
	writePiece(t, task, data, 0)
	writePiece(t, task, data, 2)
	_, err := task.Complete(context.Background(), protocol.Digest{})
	wantErr(t, "Complete with a piece missing", err, storage.ErrIncomplete)
	_, err = task.ReaderAt()
	wantErr(t, "ReaderAt of an incomplete task", err, storage.ErrIncomplete)
	if task.Info().Complete || task.Info().VerifiedPieces != 2 {
		t.Fatalf("failed Complete changed the task: %+v", task.Info())
	}
	writePiece(t, task, data, 1)
	if _, err := task.Complete(context.Background(), protocol.SHA256(data)); err != nil {
		t.Fatalf("Complete: %v", err)
	}
}

func testCompleteMismatchDiscards(t *testing.T, e *env) {
	s := e.store()
	data := content(22, 3*pieceLen)
	wrongSpec := urlSpec(t, "spec-wrong", len(data))
	wrongSpec.ContentDigest = protocol.SHA256([]byte("something else"))
	cases := []struct {
		name string
		spec storage.Spec
		want protocol.Digest
	}{
		{"wrong digest passed", urlSpec(t, "want-wrong", len(data)), protocol.SHA256([]byte("nope"))},
		{"wrong digest in the spec", wrongSpec, protocol.Digest{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task := create(t, s, tc.spec)
			writeAll(t, task, data)
			_, cursor := task.Pieces(0)
			changed := task.Changed()
			_, err := task.Complete(context.Background(), tc.want)
			wantErr(t, "Complete", err, storage.ErrDigestMismatch)
			waitChanged(t, "reset", changed)
			info := task.Info()
			if info.Complete || info.VerifiedPieces != 0 {
				t.Fatalf("after a mismatch Info = %+v, want no verified pieces", info)
			}
			for n := range info.Layout.PieceCount() {
				if task.Has(n) {
					t.Fatalf("piece %d survived the reset", n)
				}
			}
			if ps, _ := task.Pieces(cursor); len(ps) != 0 {
				t.Fatalf("Pieces after the reset = %v", ps)
			}
			// The task starts over: the pieces can be written again.
			writeAll(t, task, data)
			if ps, c := task.Pieces(0); len(ps) != int(info.Layout.PieceCount()) || c != len(ps) {
				t.Fatalf("Pieces after rewriting = %d, %d", len(ps), c)
			}
			// Reopening does not resurrect the discarded generation as complete.
			task.Close()
			s := e.store()
			st, err := s.Stat(context.Background(), tc.spec.ID)
			if err != nil || st.Complete {
				t.Fatalf("Stat after reset = %+v, %v", st, err)
			}
		})
	}
}

func testReaderAt(t *testing.T, e *env) {
	data := content(23, 2*pieceLen+1)
	task := create(t, e.store(), urlSpec(t, "readerat", len(data)))
	writeAll(t, task, data)
	if _, err := task.Complete(context.Background(), protocol.SHA256(data)); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	ra, err := task.ReaderAt()
	if err != nil {
		t.Fatalf("ReaderAt: %v", err)
	}
	cases := []struct {
		name    string
		off     int64
		n       int
		wantN   int
		wantEOF bool
	}{
		{"start", 0, 10, 10, false},
		{"across pieces", pieceLen - 5, 10, 10, false},
		{"to the end", int64(len(data)) - 4, 4, 4, false},
		{"past the end", int64(len(data)) - 4, 10, 4, true},
		{"at the end", int64(len(data)), 1, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, tc.n)
			n, err := ra.ReadAt(buf, tc.off)
			if n != tc.wantN || (err == io.EOF) != tc.wantEOF || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt(%d, %d) = %d, %v; want %d, EOF %v", tc.n, tc.off, n, err, tc.wantN, tc.wantEOF)
			}
			if !bytes.Equal(buf[:n], data[tc.off:tc.off+int64(n)]) {
				t.Fatal("wrong bytes")
			}
		})
	}
}

func testEmptyTask(t *testing.T, e *env) {
	s := e.store()
	empty := protocol.SHA256(nil)
	cases := []struct {
		name string
		spec storage.Spec
	}{
		{"URL", urlSpec(t, "empty", 0)},
		{"content", contentSpec(t, nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task := create(t, s, tc.spec)
			if c := task.Info().Layout.PieceCount(); c != 0 {
				t.Fatalf("PieceCount = %d", c)
			}
			info, err := task.Complete(context.Background(), empty)
			if err != nil || !info.Complete || info.ContentDigest != empty {
				t.Fatalf("Complete = %+v, %v", info, err)
			}
			if got := readAll(t, task); len(got) != 0 {
				t.Fatalf("content of an empty task: %d bytes", len(got))
			}
		})
	}
}

func testCompleteOutOfOrder(t *testing.T, e *env) {
	data := content(24, 8*pieceLen)
	task := create(t, e.store(), contentSpec(t, data))
	for _, n := range []uint32{7, 5, 3, 1, 6, 4, 2, 0} {
		writePiece(t, task, data, n)
	}
	info, err := task.Complete(context.Background(), protocol.Digest{})
	if err != nil || info.ContentDigest != protocol.SHA256(data) {
		t.Fatalf("Complete = %+v, %v", info, err)
	}
}
