// Package storagetest is the conformance suite for storage.Store
// implementations. It uses only the storage interfaces, so every
// implementation can run it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T, dir string) storage.Store { ... })
//	}
//
// The open function must return a store over dir, opening what a previous
// store left there (the persistence tests close a store and open the same
// directory again). Quota tests run only when the store reports a quota;
// give it one of at least 1 MiB.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// OpenFunc opens a store over dir.
type OpenFunc func(t *testing.T, dir string) storage.Store

// Run runs every conformance test as a parallel subtest, each on a store
// of its own.
func Run(t *testing.T, open OpenFunc) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Tasks", taskTests},
		{"Pieces", pieceTests},
		{"Complete", completeTests},
		{"Import", importTests},
		{"Delete", deleteTests},
		{"Quota", quotaTests},
		{"Persistence", persistenceTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newEnv(t, open))
				})
			}
		})
	}
}

// test is one named conformance test.
type test struct {
	name string
	run  func(t *testing.T, e *env)
}

// waitTimeout bounds every wait for an event that must happen.
const waitTimeout = 10 * time.Second

// pieceLen is the piece length of every test task: the smallest allowed,
// so tasks of a few pieces stay small.
const pieceLen = protocol.MinPieceLength

// env is one test's store and directory.
type env struct {
	t      *testing.T
	open   OpenFunc
	dir    string
	mu     sync.Mutex
	s      storage.Store
	closed bool
}

func newEnv(t *testing.T, open OpenFunc) *env {
	e := &env{t: t, open: open, dir: t.TempDir()}
	e.s = open(t, e.dir)
	t.Cleanup(e.close)
	return e
}

func (e *env) store() storage.Store {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.s
}

func (e *env) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		if err := e.s.Close(); err != nil {
			e.t.Errorf("Close: %v", err)
		}
	}
}

// reopen closes the store and opens the same directory again.
func (e *env) reopen() storage.Store {
	e.close()
	s := e.open(e.t, e.dir)
	e.mu.Lock()
	e.s, e.closed = s, false
	e.mu.Unlock()
	return s
}

// content returns n deterministic pseudo-random bytes.
func content(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 1}).Read(b)
	return b
}

// layoutOf is the layout of data cut at pieceLen.
func layoutOf(t *testing.T, size int) protocol.Layout {
	t.Helper()
	l, err := protocol.NewLayout(int64(size), pieceLen)
	if err != nil {
		t.Fatalf("NewLayout(%d): %v", size, err)
	}
	return l
}

// urlID derives a distinct URL-task ID from a name.
func urlID(name string) protocol.TaskID {
	return protocol.TaskID(sha256.Sum256([]byte("storagetest/" + name)))
}

// urlSpec describes a URL task of the given size, digest unknown.
func urlSpec(t *testing.T, name string, size int) storage.Spec {
	return storage.Spec{ID: urlID(name), Kind: storage.KindURL, Layout: layoutOf(t, size), Origin: storage.Origin{URL: "https://example.com/" + name}}
}

// contentSpec describes a content task for data.
func contentSpec(t *testing.T, data []byte) storage.Spec {
	d := protocol.SHA256(data)
	return storage.Spec{ID: protocol.ContentTaskID(d), Kind: storage.KindContent, Layout: layoutOf(t, len(data)), ContentDigest: d}
}

// piece returns the bytes of piece n of data.
func piece(t *testing.T, l protocol.Layout, data []byte, n uint32) []byte {
	t.Helper()
	off, length, err := l.Piece(n)
	if err != nil {
		t.Fatalf("Piece(%d): %v", n, err)
	}
	return data[off : off+int64(length)]
}

func create(t *testing.T, s storage.Store, spec storage.Spec) storage.Task {
	t.Helper()
	task, err := s.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("Create(%s): %v", spec.ID.Short(), err)
	}
	t.Cleanup(func() { task.Close() })
	return task
}

func open(t *testing.T, s storage.Store, id protocol.TaskID) storage.Task {
	t.Helper()
	task, err := s.Open(context.Background(), id)
	if err != nil {
		t.Fatalf("Open(%s): %v", id.Short(), err)
	}
	t.Cleanup(func() { task.Close() })
	return task
}

// writePiece writes piece n of data with its true digest.
func writePiece(t *testing.T, task storage.Task, data []byte, n uint32) {
	t.Helper()
	p := piece(t, task.Info().Layout, data, n)
	want := protocol.SHA256(p)
	got, err := task.WritePiece(context.Background(), n, want, bytes.NewReader(p))
	if err != nil {
		t.Fatalf("WritePiece(%d): %v", n, err)
	}
	if got != want {
		t.Fatalf("WritePiece(%d) = %s, want %s", n, got, want)
	}
}

// writeAll writes every piece of data, in order.
func writeAll(t *testing.T, task storage.Task, data []byte) {
	t.Helper()
	for n := range task.Info().Layout.PieceCount() {
		writePiece(t, task, data, n)
	}
}

// readPiece reads verified piece n and checks it against data.
func readPiece(t *testing.T, task storage.Task, data []byte, n uint32) {
	t.Helper()
	r, info, err := task.Piece(n)
	if err != nil {
		t.Fatalf("Piece(%d): %v", n, err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("Piece(%d) read: %v", n, err)
	}
	want := piece(t, task.Info().Layout, data, n)
	if !bytes.Equal(got, want) {
		t.Fatalf("Piece(%d): %d bytes differ from the %d written", n, len(got), len(want))
	}
	if info.Number != n || info.Digest != protocol.SHA256(want) {
		t.Fatalf("Piece(%d) info = %+v, want number %d digest %s", n, info, n, protocol.SHA256(want))
	}
}

// readAll reads a complete task's content through ReaderAt.
func readAll(t *testing.T, task storage.Task) []byte {
	t.Helper()
	ra, err := task.ReaderAt()
	if err != nil {
		t.Fatalf("ReaderAt: %v", err)
	}
	size := task.Info().Layout.ContentLength
	b, err := io.ReadAll(io.NewSectionReader(ra, 0, size))
	if err != nil {
		t.Fatalf("read content: %v", err)
	}
	return b
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// waitChanged fails unless ch closes within waitTimeout.
func waitChanged(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("%s: Changed did not fire", what)
	}
}

// notClosed fails if ch is already closed.
func notClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: Changed fired with nothing changed", what)
	default:
	}
}
