package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// testLogger logs to the test's output (shown on failure or with -v).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openStore opens a store in dir and closes it when the test ends.
func openStore(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	var key [32]byte
	key[0], key[1], key[2] = byte(seed), byte(seed>>8), byte(seed>>16)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// testID derives a task ID from a name.
func testID(name string) protocol.TaskID {
	return protocol.TaskID(sha256.Sum256([]byte("disk-test/" + name)))
}

// importBytes imports data as a content task.
func importBytes(t testing.TB, s *Store, data []byte, pieceLength uint32) storage.TaskInfo {
	t.Helper()
	info, err := s.Import(context.Background(), storage.ImportSpec{Kind: storage.KindContent, Size: int64(len(data)), PieceLength: pieceLength}, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return info
}

// writeTask creates a URL task of data and writes the given pieces.
func writeTask(t testing.TB, s *Store, name string, data []byte, pieces ...uint32) storage.Task {
	t.Helper()
	layout, err := protocol.NewLayout(int64(len(data)), protocol.MinPieceLength)
	if err != nil {
		t.Fatal(err)
	}
	task, err := s.Create(context.Background(), storage.Spec{ID: testID(name), Kind: storage.KindURL, Layout: layout})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for _, n := range pieces {
		off, length, _ := layout.Piece(n)
		p := data[off : off+int64(length)]
		if _, err := task.WritePiece(context.Background(), n, protocol.SHA256(p), bytes.NewReader(p)); err != nil {
			t.Fatalf("WritePiece(%d): %v", n, err)
		}
	}
	return task
}
