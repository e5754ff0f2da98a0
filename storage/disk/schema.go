package disk

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dragonfly-p2p/df/protocol"
)

// bbolt layout:
//
//	tasks/<32-byte task ID>/r   JSON diskRecord
//	tasks/<32-byte task ID>/a   access time, 8-byte big-endian unix nanoseconds
//	tasks/<32-byte task ID>/p/  verified pieces: 4-byte big-endian number → 32-byte sha256
var (
	bucketTasks  = []byte("tasks")
	keyRecord    = []byte("r")
	keyAccess    = []byte("a")
	bucketPieces = []byte("p")
)

// taskBucket returns a task's bucket, or nil if it is not stored.
func taskBucket(tx *bolt.Tx, id protocol.TaskID) *bolt.Bucket {
	tasks := tx.Bucket(bucketTasks)
	if tasks == nil {
		return nil
	}
	return tasks.Bucket(id[:])
}

// putTask writes (or rewrites) a task's record, creating its buckets.
func putTask(tx *bolt.Tx, id protocol.TaskID, record []byte) (*bolt.Bucket, error) {
	tasks, err := tx.CreateBucketIfNotExists(bucketTasks)
	if err != nil {
		return nil, err
	}
	b, err := tasks.CreateBucketIfNotExists(id[:])
	if err != nil {
		return nil, err
	}
	if _, err := b.CreateBucketIfNotExists(bucketPieces); err != nil {
		return nil, err
	}
	return b, b.Put(keyRecord, record)
}

// putAccess records a task's access time.
func putAccess(b *bolt.Bucket, at time.Time) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(at.UnixNano()))
	return b.Put(keyAccess, v[:])
}

// getAccess reads a task's access time (zero if absent or malformed).
func getAccess(b *bolt.Bucket) time.Time {
	v := b.Get(keyAccess)
	if len(v) != 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v)))
}

// putPiece records a verified piece.
func putPiece(b *bolt.Bucket, n uint32, d protocol.Digest) error {
	pb := b.Bucket(bucketPieces)
	if pb == nil {
		return fmt.Errorf("disk: pieces bucket missing")
	}
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], n)
	return pb.Put(k[:], d[:])
}

// clearPieces forgets every verified piece of a task.
func clearPieces(b *bolt.Bucket) error {
	if b.Bucket(bucketPieces) != nil {
		if err := b.DeleteBucket(bucketPieces); err != nil {
			return err
		}
	}
	_, err := b.CreateBucket(bucketPieces)
	return err
}

// deleteTask removes a task's bucket; absent is fine.
func deleteTask(tx *bolt.Tx, id protocol.TaskID) error {
	tasks := tx.Bucket(bucketTasks)
	if tasks == nil || tasks.Bucket(id[:]) == nil {
		return nil
	}
	return tasks.DeleteBucket(id[:])
}

// forEachPiece calls fn for every well-formed stored piece below count, in
// number order. Malformed entries are counted in bad and skipped.
func forEachPiece(b *bolt.Bucket, count uint32, fn func(n uint32, d protocol.Digest)) (bad int) {
	pb := b.Bucket(bucketPieces)
	if pb == nil {
		return 0
	}
	c := pb.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 4 || len(v) != len(protocol.Digest{}) {
			bad++
			continue
		}
		n := binary.BigEndian.Uint32(k)
		if n >= count {
			bad++
			continue
		}
		fn(n, protocol.Digest(v))
	}
	return bad
}

// boltTx shortens transaction signatures.
type boltTx = bolt.Tx
