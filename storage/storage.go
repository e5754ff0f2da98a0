// Package storage defines the node's piece store: the contract between the
// download and upload paths of a dfnode and the disk. A task's content lives
// in one data file written piece by piece; a piece becomes visible to readers
// only after its bytes are written and its sha256 matched; a task becomes
// complete only after its data is fsynced and, when the whole-content digest
// is known, that digest matched.
//
// The disk implementation is storage/disk; storage/storagetest is the
// conformance suite every implementation must pass.
package storage

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
)

// Sentinel errors. Implementations wrap them with context (%w); callers test
// with errors.Is.
var (
	// ErrNotFound: no such task, or no such verified piece.
	ErrNotFound = errors.New("not found")
	// ErrExists: Create named a task that exists with a different layout or
	// content digest.
	ErrExists = errors.New("task exists with a different layout")
	// ErrDigestMismatch: piece or content bytes do not match the expected
	// digest. Nothing was marked verified.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrPieceLength: piece data was shorter or longer than the layout says.
	ErrPieceLength = errors.New("piece length does not match layout")
	// ErrIncomplete: the operation needs a complete task (Complete with
	// missing pieces, ReaderAt on an incomplete task).
	ErrIncomplete = errors.New("task incomplete")
	// ErrNoSpace: the quota (or the disk) cannot hold the task, even after GC.
	ErrNoSpace = errors.New("no space")
	// ErrSizeChanged: an import read a different number of bytes than declared
	// (the file changed while it was read).
	ErrSizeChanged = errors.New("content size changed during import")
	// ErrClosed: the store or task handle was closed, or the task deleted.
	ErrClosed = errors.New("closed")
	// ErrLocked: another process holds the store (a second daemon on the same
	// data directory).
	ErrLocked = errors.New("data directory in use by another process")
	// ErrUnsafeDir: the data directory is writable by others or owned by
	// another user.
	ErrUnsafeDir = errors.New("unsafe data directory")
)

// Kind says how a task's ID was derived.
type Kind uint8

// Task kinds.
const (
	KindContent Kind = iota + 1 // ID = sha256 of the content
	KindURL                     // ID = protocol.URLTask.ID
	KindNamed                   // ID = protocol.NamedTaskID
)

// String returns "content", "url" or "named".
func (k Kind) String() string {
	switch k {
	case KindContent:
		return "content"
	case KindURL:
		return "url"
	case KindNamed:
		return "named"
	}
	return "unknown"
}

// Origin records where a URL task came from, for revalidation.
type Origin struct {
	URL          string `json:"url,omitempty"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// Spec describes a task to create.
type Spec struct {
	ID     protocol.TaskID
	Kind   Kind
	Layout protocol.Layout
	// ContentDigest is the whole content's sha256 when known up front; for
	// KindContent it must equal ID.
	ContentDigest protocol.Digest
	Origin        Origin
}

// TaskInfo is a snapshot of a task's metadata.
type TaskInfo struct {
	ID     protocol.TaskID
	Kind   Kind
	Layout protocol.Layout
	// ContentDigest is zero while unknown (URL and named tasks before they
	// complete).
	ContentDigest  protocol.Digest
	Origin         Origin
	VerifiedPieces uint32
	Complete       bool
	CreatedAt      time.Time
	AccessedAt     time.Time
	CompletedAt    time.Time
}

// ImportSpec describes content to import (dfcache import).
type ImportSpec struct {
	// ID names the task for KindNamed; for KindContent it is ignored and the
	// ID is the content's sha256, known only once every byte was read.
	ID   protocol.TaskID
	Kind Kind
	// Size is the exact number of bytes the reader yields; a different count
	// fails the import with ErrSizeChanged.
	Size int64
	// PieceLength fixes the piece length; 0 selects the automatic rule.
	PieceLength uint32
	Origin      Origin
}

// GCStats reports what one GC pass released.
type GCStats struct {
	Evicted    []protocol.TaskID
	FreedBytes int64
}

// Usage is the store's space accounting.
type Usage struct {
	// Bytes is the sum of the content lengths of all tasks (reserved space).
	Bytes int64
	// Quota is the configured limit (0: unlimited).
	Quota int64
	Tasks int
}

// Store holds tasks. Safe for concurrent use.
type Store interface {
	// Create registers a task and returns an open handle. If the task exists
	// with the same layout (and compatible digest) its existing handle state
	// is returned, pieces and all; otherwise ErrExists. Space for the whole
	// content is reserved against the quota (running GC if needed;
	// ErrNoSpace if it cannot be found).
	Create(ctx context.Context, spec Spec) (Task, error)
	// Open returns a handle on an existing task, or ErrNotFound.
	Open(ctx context.Context, id protocol.TaskID) (Task, error)
	// Import reads exactly spec.Size bytes from r, cuts them into pieces,
	// hashes each piece and the whole content while writing them, fsyncs,
	// and commits the task complete under its ID. Nothing of a failed
	// import is visible. Importing content that is already complete returns
	// the existing task's info.
	Import(ctx context.Context, spec ImportSpec, r io.Reader) (TaskInfo, error)
	// Stat returns a task's metadata without opening it.
	Stat(ctx context.Context, id protocol.TaskID) (TaskInfo, error)
	// List returns every task's metadata.
	List(ctx context.Context) ([]TaskInfo, error)
	// Delete removes a task. Open handles fail with ErrClosed from then on
	// and their Changed channels fire; the files go when the last handle is
	// closed.
	Delete(ctx context.Context, id protocol.TaskID) error
	// GC evicts tasks past their TTL, then least recently used tasks until
	// usage is under the quota's low watermark. Tasks with open handles are
	// never evicted.
	GC(ctx context.Context) (GCStats, error)
	// Usage reports space accounting.
	Usage() Usage
	// Close flushes metadata and releases the store. Open handles fail with
	// ErrClosed.
	Close() error
}

// Task is an open handle on one task. Holding it pins the task against GC.
// Safe for concurrent use: pieces may be written and read in parallel.
type Task interface {
	// Info returns a snapshot of the task's metadata.
	Info() TaskInfo
	// WritePiece reads the piece's exact length (from the layout) from r,
	// writes it at its offset and hashes it. If want is non-zero the sha256
	// must equal it (else ErrDigestMismatch); if zero, the computed digest is
	// accepted (the caller is the trusted source: back-to-source). Short or
	// long data fails with ErrPieceLength. On success the piece is visible to
	// readers at once and recorded durably soon after (always before
	// Complete returns). Writing a piece that is already verified is a no-op
	// returning its digest, as long as want matches.
	WritePiece(ctx context.Context, n uint32, want protocol.Digest, r io.Reader) (protocol.Digest, error)
	// Piece returns a reader over a verified piece's bytes and its digest, or
	// ErrNotFound if the piece is not verified.
	Piece(n uint32) (io.Reader, protocol.PieceInfo, error)
	// Has reports whether piece n is verified.
	Has(n uint32) bool
	// Pieces returns the pieces verified since cursor (0: all), in the order
	// they were verified, and the cursor to pass next time.
	Pieces(cursor int) ([]protocol.PieceInfo, int)
	// Changed returns a channel closed at the next change of this task: a
	// piece verified, completion, reset, deletion.
	Changed() <-chan struct{}
	// Complete fsyncs the data, checks the whole content's sha256 against
	// want (if non-zero) and the spec's ContentDigest (if known), records it,
	// and marks the task complete durably. ErrIncomplete if pieces are
	// missing. On ErrDigestMismatch every piece is discarded (which piece
	// lied is unknown) and the task starts over.
	Complete(ctx context.Context, want protocol.Digest) (TaskInfo, error)
	// ReaderAt reads the content of a complete task (ErrIncomplete otherwise).
	ReaderAt() (io.ReaderAt, error)
	// Err returns nil while the handle is usable, and an error wrapping
	// ErrClosed once the task was deleted or the handle or store closed.
	Err() error
	// SetOrigin updates the revalidation metadata of a URL task.
	SetOrigin(ctx context.Context, o Origin) error
	// Close releases the handle.
	Close() error
}
