package disk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

func TestFileLayoutAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store") // created by Open
	s := openStore(t, dir)
	data := randomBytes(1, 3*protocol.MinPieceLength+5)
	task := writeTask(t, s, "layout", data, 0, 1, 2, 3)
	defer task.Close()
	id := task.Info().ID

	sidecar := func() diskRecord {
		var r diskRecord
		if err := json.Unmarshal(readFile(t, filepath.Join(dir, metaPath(id))), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := sidecar(); r.Kind != "url" || r.ContentLength != int64(len(data)) || r.PieceLength != protocol.MinPieceLength ||
		r.ContentDigest != "" || r.Complete || r.ID != id.String() {
		t.Fatalf("sidecar before completion = %+v", r)
	}
	if _, err := task.Complete(context.Background(), protocol.Digest{}); err != nil {
		t.Fatal(err)
	}
	if r := sidecar(); r.ContentDigest != protocol.SHA256(data).String() || !r.Complete {
		t.Fatalf("sidecar after completion = %+v", r)
	}
	if fi, err := os.Stat(filepath.Join(dir, dataPath(id))); err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("data file: %v, %v", fi, err)
	}
	cases := []struct {
		path string
		mode os.FileMode
	}{
		{".", 0o700},
		{tasksDir, 0o700},
		{tmpDir, 0o700},
		{shardDir(id), 0o700},
		{dataPath(id), 0o600},
		{metaPath(id), 0o600},
		{dbName, 0o600},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			fi, err := os.Stat(filepath.Join(dir, tc.path))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&^tc.mode != 0 {
				t.Fatalf("mode %v, want at most %v", fi.Mode().Perm(), tc.mode)
			}
		})
	}
}

func TestStartupRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	keep := writeTask(t, s, "keep", randomBytes(2, protocol.MinPieceLength), 0)
	keepID := keep.Info().ID
	keep.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	stray := testID("stray")
	leftovers := []string{
		dataPath(stray),
		metaPath(stray),
		metaPath(keepID) + ".tmp-0123456789abcdef",
		tmpDir + "/import-0123.data",
		tmpDir + "/deleted-x.data",
		tasksDir + "/zz-not-a-shard",
	}
	for _, p := range leftovers {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, p), []byte("junk"))
	}
	s = openStore(t, dir)
	for _, p := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("leftover %s survived: %v", p, err)
		}
	}
	if info, err := s.Stat(context.Background(), keepID); err != nil || info.VerifiedPieces != 1 {
		t.Fatalf("known task after cleanup: %+v, %v", info, err)
	}
}

func TestStartupDropsTaskWithoutData(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	writeTask(t, s, "gone", randomBytes(3, protocol.MinPieceLength), 0).Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, dataPath(testID("gone")))); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	if _, err := s.Stat(context.Background(), testID("gone")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("task without data file: %v", err)
	}
}

func TestDeletedFilesRemovedOnLastClose(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	data := randomBytes(4, 2*protocol.MinPieceLength)
	a := writeTask(t, s, "del", data, 0)
	b, err := s.Open(context.Background(), a.Info().ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(context.Background(), a.Info().ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, dataPath(testID("del")))); !os.IsNotExist(err) {
		t.Fatalf("data file still at its path after Delete: %v", err)
	}
	trash := func() int {
		n, _ := filepath.Glob(filepath.Join(dir, tmpDir, "deleted-*"))
		return len(n)
	}
	if trash() != 2 {
		t.Fatalf("%d files held in tmp, want the data file and sidecar", trash())
	}
	a.Close()
	if trash() != 2 {
		t.Fatal("files removed while a handle is still open")
	}
	b.Close()
	if trash() != 0 {
		t.Fatal("files of the deleted task not removed at the last Close")
	}
}

func TestFailedImportLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	data := randomBytes(5, 4*protocol.MinPieceLength)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	readers := []struct {
		name string
		ctx  context.Context
		r    io.Reader
	}{
		{"reader error", context.Background(), io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(errors.New("boom")))},
		{"short", context.Background(), bytes.NewReader(data[:len(data)-1])},
		{"canceled", ctx, bytes.NewReader(data)},
	}
	for _, tc := range readers {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Import(tc.ctx, storage.ImportSpec{Kind: storage.KindContent, Size: int64(len(data))}, tc.r)
			if err == nil {
				t.Fatal("Import succeeded")
			}
			staged, _ := filepath.Glob(filepath.Join(dir, tmpDir, "*"))
			shards, _ := filepath.Glob(filepath.Join(dir, tasksDir, "*", "*"))
			if len(staged)+len(shards) != 0 {
				t.Fatalf("failed import left files: %v %v", staged, shards)
			}
		})
	}
}

// TestPiecesRecordedWithoutComplete checks the flusher records verified
// pieces in bbolt on its own, within its batching delay.
func TestPiecesRecordedWithoutComplete(t *testing.T) {
	s := openStore(t, t.TempDir(), WithFlushDelay(20*time.Millisecond))
	data := randomBytes(6, 3*protocol.MinPieceLength)
	task := writeTask(t, s, "flush", data, 2, 0)
	defer task.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := s.db.View(func(tx *boltTx) error {
			forEachPiece(taskBucket(tx, task.Info().ID), 3, func(uint32, protocol.Digest) { n++ })
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 pieces recorded", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockingReader yields its data only once released.
type blockingReader struct {
	release chan struct{}
	r       io.Reader
}

func (b *blockingReader) Read(p []byte) (int, error) {
	<-b.release
	return b.r.Read(p)
}

func TestWritersOfDifferentPiecesRunInParallel(t *testing.T) {
	s := openStore(t, t.TempDir())
	data := randomBytes(7, 2*protocol.MinPieceLength)
	task := writeTask(t, s, "parallel", data)
	defer task.Close()
	p0, p1 := data[:protocol.MinPieceLength], data[protocol.MinPieceLength:]
	slow := &blockingReader{release: make(chan struct{}), r: bytes.NewReader(p0)}
	done := make(chan error)
	go func() {
		_, err := task.WritePiece(context.Background(), 0, protocol.SHA256(p0), slow)
		done <- err
	}()
	// Piece 1 completes while piece 0's writer is stuck reading.
	if _, err := task.WritePiece(context.Background(), 1, protocol.SHA256(p1), bytes.NewReader(p1)); err != nil {
		t.Fatal(err)
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSecondWriterOfAPieceWaits(t *testing.T) {
	s := openStore(t, t.TempDir())
	data := randomBytes(8, protocol.MinPieceLength)
	want := protocol.SHA256(data)
	cases := []struct {
		name      string
		firstData []byte
		firstErr  error
	}{
		{"first writer succeeds: second is a no-op", data, nil},
		{"first writer lies: second writes", make([]byte, len(data)), storage.ErrDigestMismatch},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task := writeTask(t, s, tc.name, data)
			defer task.Close()
			first := &blockingReader{release: make(chan struct{}), r: bytes.NewReader(tc.firstData)}
			firstDone := make(chan error)
			go func() {
				_, err := task.WritePiece(context.Background(), 0, want, first)
				firstDone <- err
			}()
			// Wait until the first writer holds the piece.
			for {
				task.(*handle).t.mu.Lock()
				st := task.(*handle).l.state[0]
				task.(*handle).t.mu.Unlock()
				if st == pieceWriting {
					break
				}
				time.Sleep(time.Millisecond)
			}
			second := make(chan error)
			secondReader := &countingReader{r: bytes.NewReader(data)}
			go func() {
				_, err := task.WritePiece(context.Background(), 0, want, secondReader)
				second <- err
			}()
			select {
			case err := <-second:
				t.Fatalf("second writer finished (%v) while the first holds the piece", err)
			case <-time.After(50 * time.Millisecond):
			}
			close(first.release)
			if err := <-firstDone; !errors.Is(err, tc.firstErr) {
				t.Fatalf("first writer: %v, want %v", err, tc.firstErr)
			}
			if err := <-second; err != nil {
				t.Fatalf("second writer: %v", err)
			}
			if (secondReader.n > 0) != (i == 1) {
				t.Fatalf("second writer read %d bytes", secondReader.n)
			}
			r, _, err := task.Piece(0)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := io.ReadAll(r); !bytes.Equal(got, data) {
				t.Fatal("piece bytes differ")
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
