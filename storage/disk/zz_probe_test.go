package disk

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
)

func TestZZProbe(t *testing.T) {
	if os.Getenv("PROBE") == "" {
		t.Skip()
	}
	layout, _ := protocol.NewLayout(benchSize, 0)
	buf := make([]byte, pipeChunk)
	for rep := range 3 {
		f, _ := os.CreateTemp("/dev/shm", "probe")
		preallocate(f, benchSize)
		g := newGenReader(1, benchSize)
		start := time.Now()
		for off := int64(0); off < benchSize; off += pipeChunk {
			g.Read(buf)
			f.WriteAt(buf, off)
		}
		t.Logf("rep %d plain write tmpfs: %v", rep, time.Since(start))
		f.Close()
		os.Remove(f.Name())

		start = time.Now()
		hashStream(context.Background(), newGenReader(1, benchSize), layout, nil, nil)
		t.Logf("rep %d pipeline no write: %v", rep, time.Since(start))

		f, _ = os.CreateTemp("/dev/shm", "probe")
		preallocate(f, benchSize)
		st := &staging{f: f}
		start = time.Now()
		hashStream(context.Background(), newGenReader(1, benchSize), layout, st.write, nil)
		t.Logf("rep %d pipeline + write tmpfs: %v", rep, time.Since(start))
		f.Close()
		os.Remove(f.Name())
	}
}
