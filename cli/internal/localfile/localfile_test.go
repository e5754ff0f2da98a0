package localfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOpenImport(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want error
	}{
		{"regular", regular, nil},
		{"symlink to a system file", link, ErrNotRegular},
		{"fifo does not hang", fifo, ErrNotRegular},
		{"device", "/dev/null", ErrNotRegular},
		{"directory", dir, ErrNotRegular},
		{"missing", filepath.Join(dir, "nope"), os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, size, err := OpenImport(tt.path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil {
				defer f.Close()
				if size != 5 {
					t.Fatalf("size = %d", size)
				}
			}
		})
	}
}

func TestCreateExport(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	linkDir := filepath.Join(dir, "linkdir")
	if err := os.Symlink(dir, linkDir); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		path  string
		force bool
		want  error
	}{
		{"new file", filepath.Join(dir, "new"), false, nil},
		{"existing without force", existing, false, ErrExists},
		{"existing with force", existing, true, nil},
		{"through a symlinked directory", filepath.Join(linkDir, "x"), false, ErrUnsafeTarget},
		{"symlinked directory forced", filepath.Join(linkDir, "y"), true, nil},
		{"into proc", "/proc/self/x", true, ErrUnsafeTarget},
		{"onto a directory", filepath.Join(dir, "linkdir", ".."), true, ErrUnsafeTarget},
		{"missing directory", filepath.Join(dir, "no", "such"), false, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := CreateExport(tt.path, tt.force)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if _, err := out.Write([]byte("data")); err != nil {
				t.Fatal(err)
			}
			if err := out.Commit(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out.Path())
			if err != nil || string(got) != "data" {
				t.Fatalf("result %q %v", got, err)
			}
			fi, _ := os.Stat(out.Path())
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
	// An aborted export leaves nothing behind, and the original untouched.
	out, err := CreateExport(filepath.Join(dir, "aborted"), false)
	if err != nil {
		t.Fatal(err)
	}
	out.Write([]byte("partial"))
	out.Abort()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() == "aborted" || filepath.Ext(e.Name()) != "" && e.Name()[0] == '.' {
			t.Fatalf("left behind: %s", e.Name())
		}
	}
}
