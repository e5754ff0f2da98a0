package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// corruptFixture fills a store with tasks of every condition and closes it.
type corruptFixture struct {
	completeURL protocol.TaskID // downloaded and completed
	imported    protocol.TaskID // imported
	partial     protocol.TaskID // incomplete
	tampered    protocol.TaskID // complete, then its data altered on disk
	data        map[protocol.TaskID][]byte
}

func newCorruptFixture(t *testing.T, dir string) corruptFixture {
	s := openStore(t, dir)
	f := corruptFixture{data: map[protocol.TaskID][]byte{}}
	complete := func(name string, seed uint64) protocol.TaskID {
		data := randomBytes(seed, 5*protocol.MinPieceLength+17)
		task := writeTask(t, s, name, data, 0, 1, 2, 3, 4, 5)
		defer task.Close()
		if _, err := task.Complete(context.Background(), protocol.Digest{}); err != nil {
			t.Fatal(err)
		}
		f.data[task.Info().ID] = data
		return task.Info().ID
	}
	f.completeURL = complete("complete", 1)
	f.tampered = complete("tampered", 2)
	imp := randomBytes(3, 3*protocol.MinPieceLength)
	f.imported = importBytes(t, s, imp, protocol.MinPieceLength).ID
	f.data[f.imported] = imp
	part := randomBytes(4, 4*protocol.MinPieceLength)
	pt := writeTask(t, s, "partial", part, 0, 2)
	f.partial = pt.Info().ID
	pt.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Alter one byte of the tampered task's data.
	p := filepath.Join(dir, dataPath(f.tampered))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCorruptMetaDB(t *testing.T) {
	cases := []struct {
		name       string
		damage     func(t *testing.T, path string)
		quarantine bool // the damaged file must be kept aside
	}{
		{"random bytes", func(t *testing.T, p string) {
			fi, _ := os.Stat(p)
			writeFile(t, p, randomBytes(9, int(fi.Size())))
		}, true},
		{"random bytes after the meta pages", func(t *testing.T, p string) {
			b := readFile(t, p)
			copy(b[2*4096:], randomBytes(10, len(b)-2*4096))
			writeFile(t, p, b)
		}, true},
		{"truncated to half", func(t *testing.T, p string) {
			if err := os.Truncate(p, fileSize(t, p)/2); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"truncated to 100 bytes", func(t *testing.T, p string) {
			if err := os.Truncate(p, 100); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"both meta pages zeroed", func(t *testing.T, p string) {
			b := readFile(t, p)
			clear(b[:2*4096])
			writeFile(t, p, b)
		}, true},
		{"deleted", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"emptied", func(t *testing.T, p string) {
			if err := os.Truncate(p, 0); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newCorruptFixture(t, dir)
			tc.damage(t, filepath.Join(dir, dbName))

			s := openStore(t, dir)
			aside, _ := filepath.Glob(filepath.Join(dir, dbName+".corrupt-*"))
			if tc.quarantine && len(aside) != 1 {
				t.Fatalf("quarantined files: %v, want one", aside)
			}
			list, err := s.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := map[protocol.TaskID]storage.TaskInfo{}
			for _, info := range list {
				got[info.ID] = info
			}
			for _, id := range []protocol.TaskID{f.completeURL, f.imported} {
				info, ok := got[id]
				if !ok || !info.Complete {
					t.Fatalf("complete task %s not restored: %+v", id.Short(), info)
				}
				checkContent(t, s, id, f.data[id])
			}
			for _, id := range []protocol.TaskID{f.partial, f.tampered} {
				if _, ok := got[id]; ok {
					t.Fatalf("task %s restored; it must be dropped", id.Short())
				}
				if _, err := os.Stat(filepath.Join(dir, dataPath(id))); !os.IsNotExist(err) {
					t.Fatalf("files of dropped task %s left behind: %v", id.Short(), err)
				}
			}
			if len(list) != 2 {
				t.Fatalf("%d tasks after the rebuild, want 2", len(list))
			}
			// The rebuilt store works and persists.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, dir)
			if list, _ := s.List(context.Background()); len(list) != 2 {
				t.Fatalf("%d tasks after reopening the rebuilt store", len(list))
			}
		})
	}
}

// checkContent verifies a complete task's pieces and content.
func checkContent(t *testing.T, s *Store, id protocol.TaskID, data []byte) {
	t.Helper()
	task, err := s.Open(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer task.Close()
	ps, _ := task.Pieces(0)
	if len(ps) != int(task.Info().Layout.PieceCount()) {
		t.Fatalf("task %s: %d pieces, want %d", id.Short(), len(ps), task.Info().Layout.PieceCount())
	}
	for _, p := range ps {
		r, _, err := task.Piece(p.Number)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			t.Fatal(err)
		}
		if protocol.Digest(h.Sum(nil)) != p.Digest {
			t.Fatalf("task %s piece %d does not hash to its recorded digest", id.Short(), p.Number)
		}
	}
	ra, err := task.ReaderAt()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(io.NewSectionReader(ra, 0, int64(len(data))))
	if !bytes.Equal(got, data) {
		t.Fatalf("task %s content differs", id.Short())
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestCorruptMetaDBEveryPage overwrites each page of meta.db in turn with
// random bytes: Open must never panic, and whatever it then reports
// complete must be intact (except the task whose data was altered behind
// the store's back, which only a rebuild re-verifies).
func TestCorruptMetaDBEveryPage(t *testing.T) {
	base := t.TempDir()
	f := newCorruptFixture(t, base)
	pristine := readFile(t, filepath.Join(base, dbName))
	const page = 4096
	for i := 2; i < len(pristine)/page; i++ {
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(base)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		b := append([]byte(nil), pristine...)
		copy(b[i*page:(i+1)*page], randomBytes(uint64(100+i), page))
		writeFile(t, filepath.Join(dir, dbName), b)

		s := openStore(t, dir)
		list, err := s.List(context.Background())
		if err != nil {
			t.Fatalf("page %d: List: %v", i, err)
		}
		rebuilt, _ := filepath.Glob(filepath.Join(dir, dbName+".corrupt-*"))
		for _, info := range list {
			if info.ID == f.tampered {
				// Data is re-verified only by a rebuild; an intact
				// meta.db (a damaged free page) is trusted.
				if len(rebuilt) > 0 {
					t.Fatalf("page %d: the tampered task survived the rebuild", i)
				}
				continue
			}
			if info.Complete {
				checkContent(t, s, info.ID, f.data[info.ID])
			}
		}
		s.Close()
	}
}
