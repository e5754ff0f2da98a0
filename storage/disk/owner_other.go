//go:build !unix

package disk

import "io/fs"

// fileOwner is unknown on this platform.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }

func currentUID() int { return -1 }
