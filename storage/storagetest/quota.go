package storagetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

var quotaTests = []test{
	{"NoSpace", testQuotaNoSpace},
	{"GCSparesOpenTasks", testGCSparesOpenTasks},
}

// quotaSize returns a task size of about 60 % of the quota (two never fit
// together), skipping the test for a store without a quota.
func quotaSize(t *testing.T, s storage.Store) int {
	q := s.Usage().Quota
	if q == 0 {
		t.Skip("the store has no quota")
	}
	if q < 1<<20 {
		t.Fatalf("quota %d is below the suite's minimum of 1 MiB", q)
	}
	return int(q/10*6) / pieceLen * pieceLen
}

func testQuotaNoSpace(t *testing.T, e *env) {
	s := e.store()
	q := s.Usage().Quota
	size := quotaSize(t, s)
	cases := []struct {
		name string
		call func() error
	}{
		{"Create beyond the quota", func() error {
			_, err := s.Create(context.Background(), urlSpec(t, "huge", int(q)+pieceLen))
			return err
		}},
		{"Import beyond the quota", func() error {
			_, err := s.Import(context.Background(), storage.ImportSpec{Kind: storage.KindContent, Size: q + 1}, bytes.NewReader(nil))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.name, tc.call(), storage.ErrNoSpace)
			if u := s.Usage(); u.Bytes != 0 || u.Tasks != 0 {
				t.Fatalf("refused task left usage %+v", u)
			}
		})
	}
	a := create(t, s, urlSpec(t, "a", size))
	_, err := s.Create(context.Background(), urlSpec(t, "b", size))
	wantErr(t, "Create while an open task holds the space", err, storage.ErrNoSpace)
	data := content(50, size)
	_, err = s.Import(context.Background(), storage.ImportSpec{Kind: storage.KindContent, Size: int64(size)}, bytes.NewReader(data))
	wantErr(t, "Import while an open task holds the space", err, storage.ErrNoSpace)
	if u := s.Usage(); u.Tasks != 1 || u.Bytes != int64(size) {
		t.Fatalf("Usage = %+v", u)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed, the task may be evicted to make room.
	info, err := s.Import(context.Background(), storage.ImportSpec{Kind: storage.KindContent, Size: int64(size)}, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Import after closing the task: %v", err)
	}
	if info.ID != protocol.ContentTaskID(protocol.SHA256(data)) {
		t.Fatalf("Import = %+v", info)
	}
	_, err = s.Stat(context.Background(), urlID("a"))
	wantErr(t, "Stat of the evicted task", err, storage.ErrNotFound)
}

func testGCSparesOpenTasks(t *testing.T, e *env) {
	s := e.store()
	size := quotaSize(t, s) / 2 // three of these exceed the low watermark
	var open []storage.Task
	for _, name := range []string{"x", "y", "z"} {
		open = append(open, create(t, s, urlSpec(t, name, size)))
	}
	stats, err := s.GC(context.Background())
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if len(stats.Evicted) != 0 {
		t.Fatalf("GC evicted open tasks: %v", stats.Evicted)
	}
	for _, task := range open {
		if err := task.Err(); err != nil {
			t.Fatalf("open task after GC: %v", err)
		}
	}
	// Closed tasks become candidates; the one still open never is.
	open[0].Close()
	open[1].Close()
	if _, err := s.GC(context.Background()); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if _, err := s.Stat(context.Background(), urlID("z")); err != nil {
		t.Fatalf("open task evicted: %v", err)
	}
	if u := s.Usage(); u.Bytes > u.Quota {
		t.Fatalf("usage %+v above the quota after GC", u)
	}
}
