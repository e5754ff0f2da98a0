package disk

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
)

func TestZZProbe(t *testing.T) {
	if os.Getenv("PROBE") == "" {
		t.Skip()
	}
	layout, _ := protocol.NewLayout(benchSize, 0)
	for _, cs := range []int{64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20} {
		for _, nc := range []int{4, 8, 16} {
			pipeChunk, pipeChunks = cs, nc
			chunkPool = sync.Pool{New: func() any { return &chunk{buf: make([]byte, pipeChunk)} }}
			start := time.Now()
			if _, err := hashStream(context.Background(), newGenReader(1, benchSize), layout, nil, nil); err != nil {
				t.Fatal(err)
			}
			t.Logf("pipeline chunk %dK x %d, no write: %v", cs>>10, nc, time.Since(start))
		}
	}
	if os.Getenv("PROBE") == "hash" {
		return
	}
	dir := t.TempDir()
	for round := range 3 {
		f, _ := os.Create(filepath.Join(dir, "x"))
		st := &staging{f: f}
		start := time.Now()
		preallocate(f, benchSize)
		pa := time.Since(start)
		if _, err := hashStream(context.Background(), newGenReader(uint64(round), benchSize), layout, st.write, nil); err != nil {
			t.Fatal(err)
		}
		w := time.Since(start)
		datasync(f)
		t.Logf("round %d: prealloc %v, pipeline+write %v, +fdatasync %v", round, pa, w, time.Since(start))
		f.Close()
		os.Remove(f.Name())
	}
}
