package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

var pieceTests = []test{
	{"WriteAndRead", testWriteAndRead},
	{"WriteErrors", testWriteErrors},
	{"DuplicateWrite", testDuplicateWrite},
	{"ConcurrentWritersAndReaders", testConcurrent},
	{"Changed", testChanged},
	{"PiecesCursor", testPiecesCursor},
}

func testWriteAndRead(t *testing.T, e *env) {
	data := content(10, 4*pieceLen+123) // the last piece is short
	task := create(t, e.store(), urlSpec(t, "rw", len(data)))
	cases := []struct {
		name string
		n    uint32
		want protocol.Digest
	}{
		{"first piece, digest given", 0, protocol.SHA256(piece(t, task.Info().Layout, data, 0))},
		{"middle piece, digest given", 2, protocol.SHA256(piece(t, task.Info().Layout, data, 2))},
		{"short last piece, digest given", 4, protocol.SHA256(piece(t, task.Info().Layout, data, 4))},
		{"piece written back-to-source (zero digest)", 1, protocol.Digest{}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := piece(t, task.Info().Layout, data, tc.n)
			if task.Has(tc.n) {
				t.Fatalf("Has(%d) before the write", tc.n)
			}
			_, _, err := task.Piece(tc.n)
			wantErr(t, "Piece before the write", err, storage.ErrNotFound)
			got, err := task.WritePiece(context.Background(), tc.n, tc.want, iotest.HalfReader(bytes.NewReader(p)))
			if err != nil {
				t.Fatalf("WritePiece: %v", err)
			}
			if got != protocol.SHA256(p) {
				t.Fatalf("WritePiece = %s, want %s", got, protocol.SHA256(p))
			}
			if !task.Has(tc.n) {
				t.Fatalf("Has(%d) false after the write", tc.n)
			}
			readPiece(t, task, data, tc.n)
			if v := task.Info().VerifiedPieces; v != uint32(i+1) {
				t.Fatalf("VerifiedPieces = %d, want %d", v, i+1)
			}
		})
	}
	_, _, err := task.Piece(99)
	wantErr(t, "Piece out of range", err, storage.ErrNotFound)
	if task.Has(99) {
		t.Fatal("Has(99) on a 5-piece task")
	}
}

func testWriteErrors(t *testing.T, e *env) {
	data := content(11, 3*pieceLen)
	task := create(t, e.store(), urlSpec(t, "errors", len(data)))
	p := piece(t, task.Info().Layout, data, 1)
	good := protocol.SHA256(p)
	readErr := errors.New("connection reset")
	cases := []struct {
		name    string
		n       uint32
		want    protocol.Digest
		r       io.Reader
		wantErr error
	}{
		{"wrong digest", 1, protocol.SHA256([]byte("lie")), bytes.NewReader(p), storage.ErrDigestMismatch},
		{"right digest, corrupted bytes", 1, good, bytes.NewReader(append(append([]byte(nil), p[:100]...), make([]byte, len(p)-100)...)), storage.ErrDigestMismatch},
		{"short", 1, good, bytes.NewReader(p[:len(p)-1]), storage.ErrPieceLength},
		{"short without digest", 1, protocol.Digest{}, bytes.NewReader(p[:10]), storage.ErrPieceLength},
		{"empty", 1, good, bytes.NewReader(nil), storage.ErrPieceLength},
		{"long", 1, good, bytes.NewReader(append(append([]byte(nil), p...), 0)), storage.ErrPieceLength},
		{"long without digest", 1, protocol.Digest{}, io.MultiReader(bytes.NewReader(p), bytes.NewReader(p)), storage.ErrPieceLength},
		{"reader fails midway", 1, good, io.MultiReader(bytes.NewReader(p[:50]), iotest.ErrReader(readErr)), readErr},
		{"out of range", 3, good, bytes.NewReader(p), protocol.ErrPieceOutOfRange},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := task.WritePiece(context.Background(), tc.n, tc.want, tc.r)
			wantErr(t, "WritePiece", err, tc.wantErr)
			if task.Has(tc.n) || task.Info().VerifiedPieces != 0 {
				t.Fatalf("failed write left piece %d verified", tc.n)
			}
			_, _, err = task.Piece(tc.n)
			wantErr(t, "Piece after a failed write", err, storage.ErrNotFound)
		})
	}
	// The piece can still be written correctly afterwards.
	writePiece(t, task, data, 1)
	readPiece(t, task, data, 1)
}

func testDuplicateWrite(t *testing.T, e *env) {
	data := content(12, 2*pieceLen)
	task := create(t, e.store(), urlSpec(t, "dup", len(data)))
	writePiece(t, task, data, 0)
	good := protocol.SHA256(piece(t, task.Info().Layout, data, 0))
	garbage := bytes.Repeat([]byte{0xee}, pieceLen)
	cases := []struct {
		name    string
		want    protocol.Digest
		r       io.Reader
		wantErr error
	}{
		{"same digest is a no-op", good, bytes.NewReader(garbage), nil},
		{"zero digest is a no-op", protocol.Digest{}, bytes.NewReader(garbage), nil},
		{"other digest is refused", protocol.SHA256(garbage), bytes.NewReader(garbage), storage.ErrDigestMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := task.WritePiece(context.Background(), 0, tc.want, tc.r)
			if tc.wantErr != nil {
				wantErr(t, "WritePiece", err, tc.wantErr)
			} else if err != nil || got != good {
				t.Fatalf("WritePiece = %s, %v; want %s", got, err, good)
			}
			readPiece(t, task, data, 0) // the verified bytes are untouched
			if v := task.Info().VerifiedPieces; v != 1 {
				t.Fatalf("VerifiedPieces = %d, want 1", v)
			}
		})
	}
	if ps, _ := task.Pieces(0); len(ps) != 1 {
		t.Fatalf("Pieces lists %d entries after duplicate writes, want 1", len(ps))
	}
}

// testConcurrent races writers of distinct and identical pieces (some
// honest, some lying) against readers; run with -race.
func testConcurrent(t *testing.T, e *env) {
	const pieces = 32
	data := content(13, pieces*pieceLen)
	task := create(t, e.store(), urlSpec(t, "concurrent", len(data)))
	layout := task.Info().Layout
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 6 {
		wg.Go(func() {
			for i := range pieces {
				n := uint32((i*7 + w*5) % pieces)
				p := piece(t, layout, data, n)
				want := protocol.SHA256(p)
				if w == 5 { // a liar offering garbage under the true digest: refused, or a no-op once verified
					_, err := task.WritePiece(context.Background(), n, want, bytes.NewReader(make([]byte, len(p))))
					if err != nil && !errors.Is(err, storage.ErrDigestMismatch) {
						errs <- err
					}
					continue
				}
				if got, err := task.WritePiece(context.Background(), n, want, bytes.NewReader(p)); err != nil || got != want {
					errs <- err
				}
			}
		})
	}
	done := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			cursor := 0
			for {
				changed := task.Changed()
				var ps []protocol.PieceInfo
				ps, cursor = task.Pieces(cursor)
				for _, pi := range ps {
					r, info, err := task.Piece(pi.Number)
					if err != nil {
						errs <- err
						continue
					}
					b, err := io.ReadAll(r)
					if err != nil || protocol.SHA256(b) != info.Digest || !bytes.Equal(b, piece(t, layout, data, pi.Number)) {
						errs <- errors.New("reader saw bytes that do not match the verified digest")
					}
				}
				if cursor == pieces {
					return
				}
				select {
				case <-changed:
				case <-done:
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v := task.Info().VerifiedPieces; v != pieces {
		t.Fatalf("VerifiedPieces = %d, want %d", v, pieces)
	}
	if _, err := task.Complete(context.Background(), protocol.SHA256(data)); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if !bytes.Equal(readAll(t, task), data) {
		t.Fatal("content differs after concurrent writes")
	}
}

func testChanged(t *testing.T, e *env) {
	s := e.store()
	data := content(14, 2*pieceLen)
	task := create(t, s, urlSpec(t, "changed", len(data)))
	ch := task.Changed()
	notClosed(t, "fresh task", ch)

	_, err := task.WritePiece(context.Background(), 0, protocol.SHA256([]byte("x")), bytes.NewReader(piece(t, task.Info().Layout, data, 0)))
	wantErr(t, "bad write", err, storage.ErrDigestMismatch)
	notClosed(t, "failed write", ch)

	writePiece(t, task, data, 0)
	waitChanged(t, "piece verified", ch)
	ch = task.Changed()
	notClosed(t, "after the first change", ch)

	writePiece(t, task, data, 0) // duplicate: no change
	notClosed(t, "duplicate write", ch)

	writePiece(t, task, data, 1)
	waitChanged(t, "second piece", ch)
	ch = task.Changed()
	if _, err := task.Complete(context.Background(), protocol.Digest{}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	waitChanged(t, "completion", ch)

	ch = task.Changed()
	if err := s.Delete(context.Background(), task.Info().ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	waitChanged(t, "deletion", ch)
	waitChanged(t, "Changed after deletion", task.Changed())
}

func testPiecesCursor(t *testing.T, e *env) {
	data := content(15, 5*pieceLen)
	task := create(t, e.store(), urlSpec(t, "cursor", len(data)))
	if ps, c := task.Pieces(0); len(ps) != 0 || c != 0 {
		t.Fatalf("Pieces(0) on an empty task = %v, %d", ps, c)
	}
	order := []uint32{3, 0, 4}
	for _, n := range order {
		writePiece(t, task, data, n)
	}
	ps, c := task.Pieces(0)
	if c != 3 || len(ps) != 3 {
		t.Fatalf("Pieces(0) = %v, %d; want 3 pieces", ps, c)
	}
	for i, p := range ps {
		if p.Number != order[i] || p.Digest != protocol.SHA256(piece(t, task.Info().Layout, data, p.Number)) {
			t.Fatalf("Pieces(0)[%d] = %+v, want piece %d in verification order", i, p, order[i])
		}
	}
	if ps, c2 := task.Pieces(c); len(ps) != 0 || c2 != c {
		t.Fatalf("Pieces(%d) with nothing new = %v, %d", c, ps, c2)
	}
	writePiece(t, task, data, 1)
	ps, c = task.Pieces(c)
	if len(ps) != 1 || ps[0].Number != 1 || c != 4 {
		t.Fatalf("Pieces after one more = %v, %d", ps, c)
	}
	if ps, c2 := task.Pieces(2); len(ps) != 2 || c2 != 4 || ps[0].Number != 4 {
		t.Fatalf("Pieces(2) = %v, %d; want the last two", ps, c2)
	}
	if ps, c2 := task.Pieces(100); len(ps) != 4 || c2 != 4 {
		t.Fatalf("Pieces(beyond the end) = %v, %d; want a restart from 0", ps, c2)
	}
}
