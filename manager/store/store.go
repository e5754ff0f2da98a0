// Package store is the manager's embedded database: one bbolt file holding
// users, personal access tokens, scheduler clusters, schedulers and seed
// peers, applications, jobs, versioned config documents, the audit log and
// manager secrets. Records are JSON values keyed by name or by a sequence
// number; the schema is versioned and migrated forward on Open.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Sentinel errors.
var (
	// ErrNotFound is returned when a record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists is returned when creating a record whose key is taken.
	ErrExists = errors.New("store: already exists")
	// ErrNewerSchema is returned by Open when the file was written by a newer manager.
	ErrNewerSchema = errors.New("store: data file has a newer schema")
)

// SchemaVersion is the schema this code writes.
const SchemaVersion = 1

var (
	bMeta         = []byte("meta")
	bUsers        = []byte("users")
	bTokens       = []byte("tokens")
	bClusters     = []byte("clusters")
	bSchedulers   = []byte("schedulers")
	bSeedPeers    = []byte("seedpeers")
	bApplications = []byte("applications")
	bJobs         = []byte("jobs")
	bConfigs      = []byte("configs")
	bAudit        = []byte("audit")
	bSecrets      = []byte("secrets")
	keySchema     = []byte("schema")
)

// migrations[i] brings the schema from version i to i+1.
var migrations = []func(tx *bolt.Tx) error{
	func(tx *bolt.Tx) error { // 0 → 1: all buckets
		for _, b := range [][]byte{bUsers, bTokens, bClusters, bSchedulers, bSeedPeers, bApplications, bJobs, bConfigs, bAudit, bSecrets} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	},
}

// Store is the manager's database. It is safe for concurrent use.
type Store struct {
	db  *bolt.DB
	now func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used for timestamps (tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open opens (creating if needed) the bbolt file at path and migrates it.
func Open(path string, opts ...Option) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bMeta)
		if err != nil {
			return err
		}
		v := 0
		if raw := meta.Get(keySchema); len(raw) == 8 {
			v = int(binary.BigEndian.Uint64(raw))
		}
		if v > SchemaVersion {
			return fmt.Errorf("%w: %d > %d", ErrNewerSchema, v, SchemaVersion)
		}
		for ; v < SchemaVersion; v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("store: migrate %d→%d: %w", v, v+1, err)
			}
		}
		return meta.Put(keySchema, u64(uint64(v)))
	})
}

// Schema returns the schema version of the open file.
func (s *Store) Schema() (int, error) {
	var v int
	err := s.db.View(func(tx *bolt.Tx) error {
		v = int(binary.BigEndian.Uint64(tx.Bucket(bMeta).Get(keySchema)))
		return nil
	})
	return v, err
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// --- generic helpers ---

func get[T any](tx *bolt.Tx, bucket, key []byte) (T, error) {
	var v T
	raw := tx.Bucket(bucket).Get(key)
	if raw == nil {
		return v, ErrNotFound
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("store: decode %s/%s: %w", bucket, key, err)
	}
	return v, nil
}

func put(tx *bolt.Tx, bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put(key, raw)
}

func list[T any](tx *bolt.Tx, bucket []byte, keep func(*T) bool) ([]T, error) {
	var out []T
	err := tx.Bucket(bucket).ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("store: decode %s/%s: %w", bucket, k, err)
		}
		if keep == nil || keep(&v) {
			out = append(out, v)
		}
		return nil
	})
	return out, err
}
