package disk

import (
	"context"
	"os"
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
	dir := t.TempDir()
	root, _ := os.OpenRoot(dir)
	defer root.Close()
	type cfg struct{ cs, nc int }
	cfgs := []cfg{{1 << 20, 8}, {1 << 20, 16}, {1 << 20, 32}, {512 << 10, 16}, {2 << 20, 8}, {1 << 20, 8}, {1 << 20, 16}, {1 << 20, 32}, {512 << 10, 16}, {2 << 20, 8}}
	for rep, c := range cfgs {
		pipeChunk, pipeChunks = c.cs, c.nc
		chunkPool = sync.Pool{New: func() any { return &chunk{buf: alignedBuf(pipeChunk)} }}
		falloc := true
		f, direct, err := openStaging(root, "x")
		if err != nil {
			t.Fatal(err)
		}
		st := &staging{f: f, size: benchSize, direct: direct}
		start := time.Now()
		if falloc {
			preallocate(f, benchSize)
		}
		if _, err := hashStream(context.Background(), newGenReader(uint64(rep), benchSize), layout, st.write, nil); err != nil {
			t.Fatal(err)
		}
		w := time.Since(start)
		st.finish()
		t.Logf("chunk %dK x %d direct=%v falloc=%v: pipeline+write %v, +finish %v", c.cs>>10, c.nc, direct, falloc, w, time.Since(start))
		f.Close()
		root.Remove("x")
		time.Sleep(3 * time.Second)
	}
}
