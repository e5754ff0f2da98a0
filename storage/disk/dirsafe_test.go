package disk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/storage"
)

func TestUnsafeDir(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, dir string) string // returns the path to open
		wantErr bool
		wantMsg string
	}{
		{"missing dir is created 0700", func(t *testing.T, dir string) string { return filepath.Join(dir, "a", "b") }, false, ""},
		{"0700", chmodDir(0o700), false, ""},
		{"0750 (group may read)", chmodDir(0o750), false, ""},
		{"0755 (others may read)", chmodDir(0o755), false, ""},
		{"0777", chmodDir(0o777), true, "chmod 700"},
		{"0770 group-writable", chmodDir(0o770), true, "chmod 700"},
		{"0702 world-writable", chmodDir(0o702), true, "chmod 700"},
		{"0720 group-writable only", chmodDir(0o720), true, "chmod 700"},
		{"symlink", func(t *testing.T, dir string) string {
			real := filepath.Join(dir, "real")
			mustMkdir(t, real)
			link := filepath.Join(dir, "link")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, true, "symbolic link"},
		{"regular file", func(t *testing.T, dir string) string {
			f := filepath.Join(dir, "file")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return f
		}, true, "not a directory"},
		{"owned by another user", func(t *testing.T, dir string) string {
			if os.Getuid() != 0 {
				t.Skip("needs root to give a directory away")
			}
			d := filepath.Join(dir, "theirs")
			mustMkdir(t, d)
			if err := os.Chown(d, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return d
		}, true, "chown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.setup(t, t.TempDir())
			s, err := Open(context.Background(), path, WithLogger(testLogger(t)))
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				s.Close()
				fi, err := os.Stat(path)
				if err != nil || fi.Mode().Perm()&0o022 != 0 {
					t.Fatalf("data dir %v, %v", fi.Mode(), err)
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("Open accepted an unsafe directory")
			}
			if !errors.Is(err, storage.ErrUnsafeDir) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Open: %v; want ErrUnsafeDir mentioning %q", err, tc.wantMsg)
			}
			if _, serr := os.Stat(filepath.Join(path, dbName)); serr == nil {
				t.Fatal("refused directory was written to")
			}
		})
	}
}

func chmodDir(mode os.FileMode) func(t *testing.T, dir string) string {
	return func(t *testing.T, dir string) string {
		d := filepath.Join(dir, "data")
		mustMkdir(t, d)
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
}

func mustMkdir(t *testing.T, d string) {
	t.Helper()
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
}

func TestSecondOpenLocked(t *testing.T) {
	dir := t.TempDir()
	first := openStore(t, dir)
	const timeout = 200 * time.Millisecond
	start := time.Now()
	s, err := Open(context.Background(), dir, WithLockTimeout(timeout), WithLogger(testLogger(t)))
	took := time.Since(start)
	if err == nil {
		s.Close()
		t.Fatal("second Open of an open store succeeded")
	}
	if !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("second Open: %v; want ErrLocked", err)
	}
	if took > 10*timeout {
		t.Fatalf("second Open took %v with a lock timeout of %v", took, timeout)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openStore(t, dir, WithLockTimeout(timeout)) // free again
}
