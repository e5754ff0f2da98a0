// Package localfile opens the files the CLIs read and write on the user's
// behalf, safely: imports read only regular files and never follow a
// symlink at the last path component (so a link to /etc/shadow, a FIFO or a
// device is refused); exports write a temporary file in the target
// directory, fsync it and rename it into place with mode 0600, refusing to
// overwrite an existing file, to write through a symlinked directory or into
// /proc, /sys or /dev unless forced.
package localfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors.
var (
	// ErrNotRegular: the import path is not a regular file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrExists: the export target exists (use --force to replace it).
	ErrExists = errors.New("file exists")
	// ErrUnsafeTarget: the export target is in a pseudo filesystem, behind a
	// symlinked directory, or not a regular file.
	ErrUnsafeTarget = errors.New("unsafe export target")
)

// OpenImport opens path for reading: no symlink at the last component, no
// FIFO (opened non-blocking so it cannot hang), device or directory.
func OpenImport(path string) (*os.File, int64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, 0, fmt.Errorf("%s is a symbolic link: %w; pass the file it points to", path, ErrNotRegular)
		}
		return nil, 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is a %s: %w", path, kind(fi.Mode()), ErrNotRegular)
	}
	// Back to blocking reads for a regular file.
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeDevice != 0:
		return "device"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// Output is an export in progress: bytes go to a hidden temporary file that
// Commit moves into place.
type Output struct {
	*os.File
	final string
	force bool
	done  bool
}

// pseudo are filesystems nobody exports into.
var pseudo = []string{"/proc", "/sys", "/dev"}

// CreateExport prepares writing path. Unless force, an existing target, a
// symlinked directory on the way, or a pseudo filesystem is refused; even
// forced, the target must not be a directory or special file.
func CreateExport(path string, force bool) (*Output, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dir, name := filepath.Split(abs)
	dir = filepath.Clean(dir)
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("export directory: %w", err)
	}
	for _, p := range pseudo {
		if real == p || strings.HasPrefix(real, p+"/") {
			return nil, fmt.Errorf("%s is inside %s: %w", path, p, ErrUnsafeTarget)
		}
	}
	if real != dir && !force {
		return nil, fmt.Errorf("%s goes through a symbolic link (%s is %s): %w; use --force to write there anyway", path, dir, real, ErrUnsafeTarget)
	}
	if fi, err := os.Lstat(abs); err == nil {
		if !force {
			return nil, fmt.Errorf("%s: %w; use --force to replace it", path, ErrExists)
		}
		if !fi.Mode().IsRegular() && fi.Mode()&os.ModeSymlink == 0 {
			return nil, fmt.Errorf("%s is a %s: %w", path, kind(fi.Mode()), ErrUnsafeTarget)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	tmp := filepath.Join(real, "."+name+".dftmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	return &Output{File: f, final: filepath.Join(real, name), force: force}, nil
}

// Commit fsyncs the data and moves it into place (replacing the target only
// when forced; a symlink there is replaced, never followed).
func (o *Output) Commit() error {
	if o.done {
		return errors.New("export already finished")
	}
	o.done = true
	tmp := o.Name()
	if err := o.Sync(); err != nil {
		o.Close()
		os.Remove(tmp)
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := o.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	flags := uint(unix.RENAME_NOREPLACE)
	if o.force {
		flags = 0
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, o.final, flags); err != nil {
		os.Remove(tmp)
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s: %w (created meanwhile); use --force to replace it", o.final, ErrExists)
		}
		return fmt.Errorf("move into place: %w", err)
	}
	if d, err := os.Open(filepath.Dir(o.final)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Abort removes the temporary file (a no-op after Commit).
func (o *Output) Abort() {
	if o.done {
		return
	}
	o.done = true
	o.Close()
	os.Remove(o.Name())
}

// Path returns the final path.
func (o *Output) Path() string { return o.final }
