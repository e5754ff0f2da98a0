package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/dragonfly-p2p/df/storage"
)

// prepareDir creates dir (0700) if missing and refuses a directory others
// could tamper with: a symbolic link, group- or world-writable, or owned by
// another user (CVE-2025-59349).
func prepareDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("disk: %w: empty data directory path", storage.ErrUnsafeDir)
	}
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, dirPerm); err != nil {
			return fmt.Errorf("disk: create data directory: %w", err)
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return fmt.Errorf("disk: data directory: %w", err)
	}
	return checkDir(dir, fi)
}

// checkDir applies prepareDir's rules to an existing directory.
func checkDir(dir string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("disk: %w: %s is a symbolic link; configure the real path", storage.ErrUnsafeDir, dir)
	case !fi.IsDir():
		return fmt.Errorf("disk: %w: %s is not a directory", storage.ErrUnsafeDir, dir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("disk: %w: %s has mode %#o, writable by group or others; run: chmod 700 %s",
			storage.ErrUnsafeDir, dir, fi.Mode().Perm(), dir)
	}
	if uid, ok := fileOwner(fi); ok && uid != currentUID() {
		return fmt.Errorf("disk: %w: %s is owned by uid %d, not by uid %d running this process; run: chown %d %s",
			storage.ErrUnsafeDir, dir, uid, currentUID(), currentUID(), dir)
	}
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// readDir lists a directory inside the root.
func readDir(root *os.Root, name string) ([]fs.DirEntry, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}
