// Package disk is the on-disk implementation of storage.Store.
//
// Everything lives under one data directory, reached only through an
// os.Root so that no path can escape it:
//
//	meta.db                     bbolt: task records, verified piece digests, access times
//	tasks/<2 hex>/<64 hex>.data  content, pre-allocated, pieces written at their offsets
//	tasks/<2 hex>/<64 hex>.meta  JSON sidecar (kind, layout, digest, origin) to rebuild meta.db
//	tmp/                         staging for imports and deleted files still held open
//
// Every path is derived from a task ID's hex form, never from caller input.
//
// A piece becomes visible to readers as soon as its bytes are written and its
// sha256 matched. Durability is batched: a flusher fdatasyncs the dirty data
// files and only then records the newly verified pieces in bbolt, so bbolt
// never lists a piece whose bytes were not synced. A per-task background
// hasher folds verified pieces into the whole-content sha256 as they become
// contiguous, so Complete seldom has to re-read the content.
//
// If meta.db is lost or corrupt it is moved aside and rebuilt from the
// sidecars: only content that re-hashes to its recorded digest survives.
package disk
