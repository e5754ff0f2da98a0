//go:build linux

package disk

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// openStaging creates an import's staging file for direct I/O (O_DIRECT:
// no page-cache copy, no writeback work for the kernel's threads, which on
// a small machine compete with the hashing for CPU). File systems without
// direct I/O (tmpfs) get a buffered file; direct reports which one it is.
func openStaging(root *os.Root, name string) (f *os.File, direct bool, err error) {
	f, err = root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_DIRECT, filePerm)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return nil, false, err
	}
	_ = root.Remove(name) // the refusal may come after the file was created
	f, err = root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
	return f, false, err
}

// clearDirect switches f back to buffered I/O.
func clearDirect(f *os.File) error {
	var err error
	if cerr := control(f, func(fd int) {
		var fl int
		if fl, err = unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
			_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_DIRECT)
		}
	}); cerr != nil {
		return cerr
	}
	return err
}

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
