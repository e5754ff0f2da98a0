package node_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/p2p"
	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/testnet"
)

// Benchmarks of the data plane. Sizes default to what fits `go test
// -bench`; DF_BENCH_LARGE=1 runs the 1 GiB figures of docs/benchmarks.md.
// Each benchmark that has a floor (raw QUIC stream, in-memory sha256)
// measures it in the same run, so ratios survive a noisy machine.

func benchSize(b *testing.B, def int) int {
	if s := os.Getenv("DF_BENCH_SIZE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	if os.Getenv("DF_BENCH_LARGE") != "" {
		return 1 << 30
	}
	return def
}

// fillReader yields size pseudo-random bytes without allocating them all.
type fillReader struct {
	left int64
	x    uint64
}

func (f *fillReader) Read(p []byte) (int, error) {
	if f.left == 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), f.left)
	i := int64(0)
	for ; i+8 <= n; i += 8 {
		f.x ^= f.x << 13
		f.x ^= f.x >> 7
		f.x ^= f.x << 17
		binary.LittleEndian.PutUint64(p[i:], f.x)
	}
	for ; i < n; i++ {
		p[i] = byte(f.x >> (8 * (i % 8)))
	}
	f.left -= n
	return int(n), nil
}

// benchFile writes size pseudo-random bytes to a file (the CLI imports
// files: the benchmark must not measure a data generator).
func benchFile(b *testing.B, size int, seed uint64) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "payload")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, &fillReader{left: int64(size), x: seed | 1}); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

func benchCluster(b *testing.B, n int) *testnet.Cluster {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	c, err := testnet.Start(ctx, b.TempDir(), n, testnet.WithAPISockets(), debugLog(),
		testnet.WithConfig(func(_ int, cfg *node.Config) {
			if s := os.Getenv("DF_BENCH_STREAMS"); s != "" { // tuning experiments
				cfg.Download.StreamsPerParent, _ = strconv.Atoi(s)
			}
		}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.WaitConnected(ctx, n-1); err != nil {
		b.Fatal(err)
	}
	for _, nd := range c.Nodes() {
		if err := testnet.WaitFor(ctx, 10*time.Millisecond, func() bool { _, err := os.Stat(nd.Socket()); return err == nil }); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

func benchImport(b *testing.B, nd *testnet.Node, size int, seed uint64) string {
	b.Helper()
	info, err := api.NewClient(nd.Socket()).Import(context.Background(), &fillReader{left: int64(size), x: seed | 1}, int64(size), api.ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return info.ID
}

// BenchmarkTransfer compares a node-to-node export (through the local API,
// as dfcache export does) with a raw go-libp2p QUIC stream copy between two
// hosts on the same machine.
func BenchmarkTransfer(b *testing.B) {
	size := benchSize(b, 128<<20)
	for _, mode := range []struct {
		name  string
		verif bool
	}{{"raw-quic-stream", false}, {"raw-quic-stream+2xsha256", true}} {
		// The floor: a raw go-libp2p QUIC stream between two hosts; and the
		// same while the receiver hashes every byte twice, as a download's
		// per-piece and whole-content checks do.
		b.Run(mode.name, func(b *testing.B) { benchRawQUIC(b, size, mode.verif) })
	}
	b.Run("download-only", func(b *testing.B) {
		// The conductor alone: no local API streaming.
		c := benchCluster(b, 2)
		idStr := benchImport(b, c.Node(0), size, 11)
		id, _ := protocol.ParseTaskID(idStr)
		ctx := context.Background()
		b.SetBytes(int64(size))
		b.ResetTimer()
		for range b.N {
			j, err := c.Node(1).Export(ctx, id, storage.KindContent)
			if err != nil {
				b.Fatal(err)
			}
			if err := j.Wait(ctx); err != nil {
				b.Fatal(err)
			}
			j.Release()
			b.StopTimer()
			if err := c.Node(1).Delete(ctx, id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("export", func(b *testing.B) {
		c := benchCluster(b, 2)
		id := benchImport(b, c.Node(0), size, 11)
		client := api.NewClient(c.Node(1).Socket())
		ctx := context.Background()
		b.SetBytes(int64(size))
		b.ResetTimer()
		for range b.N {
			s, err := client.Export(ctx, id, false)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, s)
			s.Close()
			if err != nil || n != int64(size) {
				b.Fatalf("exported %d: %v", n, err)
			}
			b.StopTimer()
			if err := client.Delete(ctx, id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

func benchRawQUIC(b *testing.B, size int, verify bool) {
	dir := b.TempDir()
	for _, d := range []string{dir + "/a", dir + "/b"} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	hA, err := p2p.NewHost(dir+"/a", p2p.NewGater(), p2p.WithListen("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		b.Fatal(err)
	}
	defer hA.Close()
	hB, err := p2p.NewHost(dir+"/b", p2p.NewGater(), p2p.WithListen("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		b.Fatal(err)
	}
	defer hB.Close()
	buf := make([]byte, 256<<10)
	(&fillReader{left: int64(len(buf)), x: 7}).Read(buf)
	hA.SetStreamHandler("/bench/1.0.0", func(s network.Stream) {
		defer s.Close()
		for left := size; left > 0; left -= len(buf) {
			if _, err := s.Write(buf[:min(left, len(buf))]); err != nil {
				return
			}
		}
	})
	ctx := context.Background()
	if err := hB.Connect(ctx, peer.AddrInfo{ID: hA.ID(), Addrs: hA.Addrs()}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		s, err := hB.NewStream(ctx, hA.ID(), "/bench/1.0.0")
		if err != nil {
			b.Fatal(err)
		}
		var sink io.Writer = io.Discard
		if verify {
			sink = io.MultiWriter(sha256.New(), sha256.New())
		}
		n, err := io.Copy(sink, s)
		if err != nil || n != int64(size) {
			b.Fatalf("copied %d: %v", n, err)
		}
		s.Close()
	}
}

// BenchmarkImport compares dfcache import (through the API socket, as the
// CLI does) with one in-memory sha256 pass over the same bytes: hashing is
// the floor.
func BenchmarkImport(b *testing.B) {
	size := benchSize(b, 256<<20)
	b.Run("sha256-in-memory", func(b *testing.B) {
		data := make([]byte, 4<<20)
		(&fillReader{left: int64(len(data)), x: 3}).Read(data)
		b.SetBytes(int64(size))
		for range b.N {
			h := sha256.New()
			for left := size; left > 0; left -= len(data) {
				h.Write(data[:min(left, len(data))])
			}
			h.Sum(nil)
		}
	})
	b.Run("import", func(b *testing.B) {
		c := benchCluster(b, 1)
		client := api.NewClient(c.Node(0).Socket())
		path := benchFile(b, size, 100)
		b.SetBytes(int64(size))
		b.ResetTimer()
		for range b.N {
			f, err := os.Open(path) // as dfcache import does
			if err != nil {
				b.Fatal(err)
			}
			if _, err := client.Import(context.Background(), f, int64(size), api.ImportOptions{}); err != nil {
				b.Fatal(err)
			}
			f.Close()
			b.StopTimer()
			tasks, _ := client.List(context.Background())
			for _, t := range tasks {
				client.Delete(context.Background(), t.ID)
			}
			b.StartTimer()
		}
	})
}

// BenchmarkStat measures dfcache stat: local, remote (another node has
// it), missing (nobody has it, local only).
func BenchmarkStat(b *testing.B) {
	c := benchCluster(b, 2)
	id := benchImport(b, c.Node(0), 4<<10, 5)
	ctx := context.Background()
	local := api.NewClient(c.Node(0).Socket())
	remote := api.NewClient(c.Node(1).Socket())
	missing := fmt.Sprintf("%064x", 42)
	for _, tc := range []struct {
		name   string
		client *api.Client
		id     string
		local  bool
		want   error
	}{
		{"local", local, id, false, nil},
		{"remote", remote, id, false, nil},
		{"missing-local", remote, missing, true, api.ErrNotFound},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				_, err := tc.client.Stat(ctx, tc.id, tc.local)
				if (tc.want == nil) != (err == nil) {
					b.Fatalf("stat: %v", err)
				}
			}
		})
	}
}

// BenchmarkExport exports tasks of several sizes from another node.
func BenchmarkExport(b *testing.B) {
	c := benchCluster(b, 2)
	client := api.NewClient(c.Node(1).Socket())
	ctx := context.Background()
	sizes := []int{4 << 10, 4 << 20, 128 << 20}
	if os.Getenv("DF_BENCH_LARGE") != "" {
		sizes = append(sizes, 1<<30)
	}
	for _, size := range sizes {
		id := benchImport(b, c.Node(0), size, uint64(size))
		b.Run(storageSize(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for range b.N {
				s, err := client.Export(ctx, id, false)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, s)
				s.Close()
				if err != nil || n != int64(size) {
					b.Fatalf("exported %d: %v", n, err)
				}
				b.StopTimer()
				if err := client.Delete(ctx, id); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

func storageSize(n int) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	default:
		return fmt.Sprintf("%dKiB", n>>10)
	}
}

// BenchmarkSwarmURL: 1 origin + 8 nodes fetch the same URL at once. It
// reports origin bytes / file size (target ≤ 1.05) and how long the last
// node took, next to one node fetching it alone from the origin.
func BenchmarkSwarmURL(b *testing.B) {
	size := benchSize(b, 64<<20)
	if os.Getenv("DF_BENCH_LARGE") != "" {
		size = 256 << 20
	}
	const nodes = 8
	origin, err := testnet.NewOrigin()
	if err != nil {
		b.Fatal(err)
	}
	defer origin.Close()
	data := make([]byte, size)
	(&fillReader{left: int64(size), x: 99}).Read(data)
	c := benchCluster(b, nodes)
	ctx := context.Background()
	var ratio float64
	b.SetBytes(int64(size) * nodes)
	b.ResetTimer()
	for i := range b.N {
		path := fmt.Sprintf("/swarm-%d.bin", i)
		origin.Put(path, data, fmt.Sprintf(`"%d"`, i))
		before := origin.BytesServed()
		errs := make(chan error, nodes)
		for _, nd := range c.Nodes() {
			go func() {
				s, err := api.NewClient(nd.Socket()).Download(ctx, api.DownloadRequest{URL: origin.URL(path)})
				if err == nil {
					var n int64
					n, err = io.Copy(io.Discard, s)
					s.Close()
					if err == nil && n != int64(size) {
						err = fmt.Errorf("got %d bytes", n)
					}
				}
				errs <- err
			}()
		}
		for range nodes {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		ratio = float64(origin.BytesServed()-before) / float64(size)
	}
	b.ReportMetric(ratio, "origin-bytes/size")
}
