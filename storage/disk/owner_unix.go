//go:build unix

package disk

import (
	"io/fs"
	"os"
	"syscall"
)

// fileOwner returns the uid owning fi and whether it is known.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

func currentUID() int { return os.Getuid() }
