//go:build !linux

package disk

import "os"

// preallocate sets f's length to size (a sparse file where supported).
func preallocate(f *os.File, size int64) error { return f.Truncate(size) }

// datasync flushes f to stable storage.
func datasync(f *os.File) error { return f.Sync() }

// startWriteback is a no-op where sync_file_range does not exist.
func startWriteback(*os.File, int64, int64) {}
