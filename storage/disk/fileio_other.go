//go:build !linux

package disk

import "os"

// preallocate sets f's length to size (a sparse file where supported).
func preallocate(f *os.File, size int64) error { return f.Truncate(size) }

// datasync flushes f to stable storage.
func datasync(f *os.File) error { return f.Sync() }

// startWriteback is a no-op where sync_file_range does not exist.
func startWriteback(*os.File, int64, int64) {}

// openStaging creates an import's staging file (buffered I/O here).
func openStaging(root *os.Root, name string) (*os.File, bool, error) {
	f, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
	return f, false, err
}

// clearDirect is a no-op without direct I/O.
func clearDirect(*os.File) error { return nil }
