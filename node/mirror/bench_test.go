package mirror_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/testnet"
)

// BenchmarkWarmPull: a node that already holds a layer serves it through
// its mirror; measured side by side with reading the same bytes from a
// local file. Reports both throughputs and their ratio (target ≥ 0.8).
//
// cache=warm: both read from the page cache (the usual case right after a
// pull). cache=cold: the page cache is dropped before each read (root
// only, skipped otherwise), so both read the disk, as a node serving a
// layer it pulled hours ago does.
//
// The same iterations also time the ceiling of any HTTP mirror on this
// machine: a bare TCP server on loopback copying the same file to the
// same kind of client (tcp/disk), and the mirror against it (mirror/tcp).
func BenchmarkWarmPull(b *testing.B) {
	reg := newUpstreamRegistry(b)
	img := testImage(b, reg, "library/warm:v1", 64<<20, 1)
	c := startNodes(b, 1)
	m := startMirror(b, c.Node(0).Downloader(), testConfig(reg))
	layers, err := img.Layers()
	if err != nil {
		b.Fatal(err)
	}
	d, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	// Warm the node: one full pull through the mirror.
	if _, err := crane.Pull(m.Host+"/library/warm:v1", crane.Insecure); err != nil {
		b.Fatal(err)
	}
	url := m.URL + "/v2/library/warm/blobs/" + d.String()
	if n := getAll(b, url); n != size {
		b.Fatalf("warm-up read %d bytes", n)
	}
	// The same bytes as a local file.
	rc, err := layers[0].Compressed()
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), "blob")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		b.Fatal(err)
	}
	_ = rc.Close()
	_ = f.Close()
	readFile(b, file)
	tcpAddr := serveFileOverTCP(b, file)
	reg.resetCounts()

	for _, bc := range []struct {
		name string
		cold bool
	}{{"cache=warm", false}, {"cache=cold", true}} {
		b.Run(bc.name, func(b *testing.B) {
			prepare := func() {}
			if bc.cold {
				if err := dropCaches(); err != nil {
					b.Skipf("cannot drop the page cache (needs root): %v", err)
				}
				prepare = func() {
					if err := dropCaches(); err != nil {
						b.Fatal(err)
					}
				}
			}
			var disk, mirrorTime, tcpTime time.Duration
			b.SetBytes(size)
			for b.Loop() {
				disk += timed(b, prepare, func() { readFile(b, file) })
				mirrorTime += timed(b, prepare, func() {
					if n := getAll(b, url); n != size {
						b.Fatalf("read %d bytes", n)
					}
				})
				tcpTime += timed(b, prepare, func() {
					if n := readTCP(b, tcpAddr); n != size {
						b.Fatalf("tcp: read %d bytes", n)
					}
				})
			}
			b.StopTimer()
			mbs := func(d time.Duration) float64 { return float64(b.N) * float64(size) / d.Seconds() / (1 << 20) }
			b.ReportMetric(mbs(disk), "disk-MB/s")
			b.ReportMetric(mbs(mirrorTime), "mirror-MB/s")
			b.ReportMetric(mbs(tcpTime), "tcp-MB/s")
			b.ReportMetric(disk.Seconds()/mirrorTime.Seconds(), "mirror/disk")
			b.ReportMetric(disk.Seconds()/tcpTime.Seconds(), "tcp/disk")
			b.ReportMetric(tcpTime.Seconds()/mirrorTime.Seconds(), "mirror/tcp")
		})
	}
	if got := reg.totalBlobBytes(); got != 0 {
		b.Fatalf("warm pulls fetched %d bytes from the registry", got)
	}
}

// timed runs prepare with the benchmark timer stopped, then times read.
func timed(b *testing.B, prepare, read func()) time.Duration {
	b.StopTimer()
	prepare()
	b.StartTimer()
	t := time.Now()
	read()
	return time.Since(t)
}

// dropCaches writes dirty pages back and drops the page cache, so that the
// next read of any file comes from the disk.
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0)
}

// BenchmarkColdTTFB: time to the first byte of a blob nobody has, through a
// node's mirror, against the registry's own time to first byte for the
// same blob. DF_BENCH_LARGE=1 uses 1 GiB blobs (64 MiB by default).
// Reports both and their ratio (target ≤ 1.5).
//
// registry=loopback is go-containerregistry's in-memory registry answering
// in well under a millisecond, where any extra request shows;
// registry=+20ms delays each of its responses by 20 ms, as a registry
// across a WAN would (the mirror's own requests are delayed the same way).
// dht: the node finds out through a provider lookup that nobody has the
// blob; scheduler: a scheduler (the usual deployment) sends it to the
// registry.
func BenchmarkColdTTFB(b *testing.B) {
	size := int64(64 << 20)
	if v, _ := strconv.ParseBool(os.Getenv("DF_BENCH_LARGE")); v {
		size = 1 << 30
	}
	for _, bc := range []struct {
		name      string
		delay     time.Duration
		scheduled bool
	}{
		{"registry=loopback/dht", 0, false},
		{"registry=+20ms/dht", 20 * time.Millisecond, false},
		{"registry=loopback/scheduler", 0, true},
		{"registry=+20ms/scheduler", 20 * time.Millisecond, true},
	} {
		b.Run(bc.name, func(b *testing.B) { benchColdTTFB(b, size, bc.delay, bc.scheduled) })
	}
}

func benchColdTTFB(b *testing.B, size int64, delay time.Duration, scheduled bool) {
	opts := []testnet.Option{testnet.WithNodeOptions(func(int) []node.Option {
		return []node.Option{node.WithDownloadConfig(func(c *download.Config) {
			c.FindTimeout = 2 * time.Second // the conductor's defaults otherwise (gather window 300 ms)
		})}
	})}
	reg := newUpstreamRegistry(b)
	if delay > 0 {
		reg.setHook(func(http.ResponseWriter, *http.Request) bool {
			time.Sleep(delay)
			return false
		})
	}
	if scheduled {
		opts = append(opts, testnet.WithSchedulers(1))
	}
	c := startNodes(b, 2, opts...)
	m := startMirror(b, c.Node(0).Downloader(), testConfig(reg))
	// One untimed pull first: the mirror learns the registry's auth
	// challenge once (a GET /v2/), as a running node already has.
	img := testImage(b, reg, "library/warmup:v1", 1<<20+1, 1)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	warmSize, _ := layers[0].Size()
	ttfb(b, m.URL+"/v2/library/warmup/blobs/"+d.String(), warmSize)
	var direct, viaMirror time.Duration
	i := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		ref := fmt.Sprintf("library/cold%d:v1", i)
		i++
		img := testImage(b, reg, ref, size, 1)
		layers, _ := img.Layers()
		d, _ := layers[0].Digest()
		blobSize, _ := layers[0].Size()
		name := ref[:len(ref)-3]
		// As every runtime does, the manifest comes first (untimed, on
		// both sides): the mirror confirms the caller's access to the
		// blobs it references there, so the blob request pays no check.
		getManifest(b, "http://"+reg.Host+"/v2/"+name+"/manifests/v1")
		getManifest(b, m.URL+"/v2/"+name+"/manifests/v1")
		// The image was just generated: collect now, so that neither
		// side's timing includes a collection of it.
		runtime.GC()
		b.StartTimer()
		// Whichever goes first pays a millisecond or two more on this
		// machine: alternate.
		directURL, mirrorURL := "http://"+reg.Host+"/v2/"+name+"/blobs/"+d.String(), m.URL+"/v2/"+name+"/blobs/"+d.String()
		if i%2 == 0 {
			direct += ttfb(b, directURL, blobSize)
			viaMirror += ttfb(b, mirrorURL, blobSize)
		} else {
			viaMirror += ttfb(b, mirrorURL, blobSize)
			direct += ttfb(b, directURL, blobSize)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(direct.Seconds()*1000/n, "registry-ttfb-ms")
	b.ReportMetric(viaMirror.Seconds()*1000/n, "mirror-ttfb-ms")
	b.ReportMetric(viaMirror.Seconds()/direct.Seconds(), "mirror/registry")
}

// ttfb GETs url, returns the time until the first body byte, then drains
// and checks the length.
func ttfb(b *testing.B, url string, size int64) time.Duration {
	b.Helper()
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s", url, resp.Status)
	}
	br := bufio.NewReaderSize(resp.Body, 1)
	if _, err := br.ReadByte(); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	n, err := io.Copy(io.Discard, br)
	if err != nil {
		b.Fatal(err)
	}
	if n+1 != size {
		b.Fatalf("GET %s: %d bytes, want %d", url, n+1, size)
	}
	return took
}

func getAll(b *testing.B, url string) int64 {
	b.Helper()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s", url, resp.Status)
	}
	n, err := drain(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// drain reads r to the end as containerd's content.Copy does: with a
// 1 MiB buffer (io.Copy into io.Discard would read 8 KiB at a time, which
// measures the benchmark's client rather than the server).
func drain(r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	return io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, buf)
}

func readFile(b *testing.B, path string) {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := drain(f); err != nil {
		b.Fatal(err)
	}
}

// serveFileOverTCP serves path to every connection on a loopback listener
// as a bare byte stream, copied with 1 MiB buffers (as the mirror does):
// the fastest an HTTP mirror could be on this machine's loopback.
func serveFileOverTCP(b *testing.B, path string) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		buf := make([]byte, 1<<20)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if f, err := os.Open(path); err == nil {
				// The wrappers hide WriteTo/ReadFrom: a plain copy, no sendfile.
				_, _ = io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{f}, buf)
				f.Close()
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// readTCP reads everything a serveFileOverTCP listener sends, the way
// getAll reads a response body.
func readTCP(b *testing.B, addr string) int64 {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	n, err := drain(c)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// getManifest GETs a manifest as a runtime does and checks the answer.
func getManifest(b *testing.B, url string) {
	b.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
}
