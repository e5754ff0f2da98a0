package disk

import (
	"fmt"
	"io"
	"os"
	"path"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// writeSidecar atomically (re)writes a task's JSON sidecar.
func writeSidecar(root *os.Root, info storage.TaskInfo) error {
	b, err := encodeRecord(info)
	if err != nil {
		return err
	}
	return writeFileAtomic(root, metaPath(info.ID), b)
}

// readSidecar reads and validates the sidecar of id.
func readSidecar(root *os.Root, id protocol.TaskID) (storage.TaskInfo, error) {
	f, err := root.Open(metaPath(id))
	if err != nil {
		return storage.TaskInfo{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return storage.TaskInfo{}, err
	}
	return decodeRecord(b, id)
}

// writeFileAtomic replaces name with data: temporary file in the same
// directory, fsync, rename, fsync of the directory.
func writeFileAtomic(root *os.Root, name string, data []byte) (err error) {
	tmp := name + ".tmp-" + randomSuffix()
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = root.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = root.Rename(tmp, name); err != nil {
		return err
	}
	return syncDir(root, path.Dir(name))
}

// syncDir fsyncs a directory so that entries created or renamed in it are
// durable.
func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirShard creates a task's shard directory if needed.
func mkdirShard(root *os.Root, id protocol.TaskID) error {
	err := root.Mkdir(shardDir(id), dirPerm)
	if err != nil && !os.IsExist(err) {
		return err
	}
	return nil
}
