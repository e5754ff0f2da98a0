package disk

import (
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/dragonfly-p2p/df/protocol"
)

// Names inside the data directory. Paths use "/" and are always relative to
// the store's os.Root.
const (
	dbName   = "meta.db"
	tasksDir = "tasks"
	tmpDir   = "tmp"
	dataExt  = ".data"
	metaExt  = ".meta"
	dirPerm  = 0o700
	filePerm = 0o600
)

// shardDir is the directory holding a task's files: tasks/<first 2 hex>.
func shardDir(id protocol.TaskID) string { return tasksDir + "/" + id.String()[:2] }

// dataPath is a task's content file.
func dataPath(id protocol.TaskID) string { return shardDir(id) + "/" + id.String() + dataExt }

// metaPath is a task's JSON sidecar.
func metaPath(id protocol.TaskID) string { return shardDir(id) + "/" + id.String() + metaExt }

// parseTaskFile recognises "<64 hex>.data" and "<64 hex>.meta".
func parseTaskFile(name string) (id protocol.TaskID, ext string, ok bool) {
	for _, e := range []string{dataExt, metaExt} {
		if base, found := strings.CutSuffix(name, e); found {
			parsed, err := protocol.ParseTaskID(base)
			if err != nil || strings.Contains(base, ":") {
				return id, "", false
			}
			return parsed, e, true
		}
	}
	return id, "", false
}

// isShardName reports whether name is a two-character lowercase hex shard.
func isShardName(name string) bool {
	if len(name) != 2 {
		return false
	}
	for i := range 2 {
		c := name[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// randomSuffix returns 16 random hex characters for temporary names.
func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
