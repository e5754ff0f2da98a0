package disk

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/dragonfly-p2p/df/storage"
)

// ErrInvalidSpec is returned for a Spec or ImportSpec that cannot describe a
// task (unknown kind, zero ID, a content task whose digest is not its ID).
var ErrInvalidSpec = errors.New("invalid task spec")

var (
	errStoreClosed  = fmt.Errorf("disk: store %w", storage.ErrClosed)
	errHandleClosed = fmt.Errorf("disk: task handle %w", storage.ErrClosed)
	errTaskDeleted  = fmt.Errorf("disk: task deleted: %w", storage.ErrClosed)
)

// noSpace adds storage.ErrNoSpace to a "no space left on device" error,
// keeping the OS error in the chain.
func noSpace(err error) error {
	if err != nil && errors.Is(err, syscall.ENOSPC) && !errors.Is(err, storage.ErrNoSpace) {
		return fmt.Errorf("%w: %w", storage.ErrNoSpace, err)
	}
	return err
}

// ioChunk is the buffer size for piece writes and read-backs: pieces are
// streamed through it, never held whole in memory.
const ioChunk = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, ioChunk); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }
