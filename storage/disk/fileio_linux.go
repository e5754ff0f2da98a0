//go:build linux

package disk

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate reserves size bytes for f and sets its length, so that a
// full disk shows up now rather than in the middle of a piece.
func preallocate(f *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	var err error
	if cerr := control(f, func(fd int) { err = unix.Fallocate(fd, 0, 0, size) }); cerr != nil {
		return cerr
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return f.Truncate(size) // file system without fallocate: sparse file
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	return nil
}

// datasync flushes f's data (and the metadata needed to read it back).
func datasync(f *os.File) error {
	var err error
	if cerr := control(f, func(fd int) {
		for {
			if err = unix.Fdatasync(fd); err != unix.EINTR {
				return
			}
		}
	}); cerr != nil {
		return cerr
	}
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}

// startWriteback asks the kernel to start writing [off, off+n) to disk now,
// without waiting, so that a later datasync has little left to do.
func startWriteback(f *os.File, off, n int64) {
	_ = control(f, func(fd int) { _ = unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE) })
}

func control(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}
