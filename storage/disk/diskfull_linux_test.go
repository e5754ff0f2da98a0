//go:build linux

package disk

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// TestDiskFull runs the store on a 4 MiB tmpfs (root only): a full disk
// surfaces as ErrNoSpace wrapping ENOSPC, leaves nothing half-visible, and
// what the store holds keeps being served.
func TestDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fs")
	mustMkdir(t, dir)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	s := openStore(t, dir)
	small := randomBytes(1, 2*protocol.MinPieceLength)
	kept := importBytes(t, s, small, protocol.MinPieceLength)

	big := randomBytes(2, 8<<20)
	layout, _ := protocol.NewLayout(int64(len(big)), protocol.MinPieceLength)
	cases := []struct {
		name string
		call func() error
	}{
		{"import", func() error {
			_, err := s.Import(context.Background(), storage.ImportSpec{Kind: storage.KindContent, Size: int64(len(big))}, bytes.NewReader(big))
			return err
		}},
		{"create", func() error {
			task, err := s.Create(context.Background(), storage.Spec{ID: testID("big"), Kind: storage.KindURL, Layout: layout})
			if err == nil {
				task.Close()
			}
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, storage.ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("%s on a full disk: %v; want ErrNoSpace wrapping ENOSPC", tc.name, err)
			}
			if u := s.Usage(); u.Tasks != 1 || u.Bytes != int64(len(small)) {
				t.Fatalf("Usage after the failure = %+v", u)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, tmpDir, "*")); len(left) != 0 {
				t.Fatalf("staging left behind: %v", left)
			}
			if files, _ := filepath.Glob(filepath.Join(dir, tasksDir, "*", "*")); len(files) != 2 {
				t.Fatalf("task files %v; want only the kept task's data and sidecar", files)
			}
		})
	}
	checkContent(t, s, kept.ID, small)
}
