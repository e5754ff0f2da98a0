package mirror_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/testnet"
	"github.com/dragonfly-p2p/df/testnet/shape"
)

// BenchmarkShapedSwarmPull: 16 hosts on 25 Mbit/s links (userspace
// shaping, testnet/shape) pull one 4-layer image at once, each through its
// own node's mirror, from a registry whose link is shaped like a host's.
// The same iteration then times the same 16 pulls going straight to the
// registry (each client behind its own shaped link). Reports both times,
// their ratio (target ≤ 0.15) and the registry's blob bytes against the
// image's (target ≤ 1.05).
//
// Layers are 4 MiB by default (DF_BENCH_LAYER_MIB=N for N MiB;
// DF_BENCH_SKIP_DIRECT=1 measures the mirrors' registry bytes only;
// one scheduler unless DF_BENCH_SCHEDULERS says otherwise);
// DF_BENCH_LARGE=1 uses the 64 MiB
// (the straight-to-registry half then takes about 23 minutes: 16 × 256 MiB
// through one 25 Mbit/s link).
func BenchmarkShapedSwarmPull(b *testing.B) {
	const hosts, layers = 16, 4
	layerSize := int64(4 << 20)
	if v, _ := strconv.ParseBool(os.Getenv("DF_BENCH_LARGE")); v {
		layerSize = 64 << 20
	}
	if v, err := strconv.Atoi(os.Getenv("DF_BENCH_LAYER_MIB")); err == nil && v > 0 && v <= 1024 {
		layerSize = int64(v) << 20
	}
	skipDirect, _ := strconv.ParseBool(os.Getenv("DF_BENCH_SKIP_DIRECT")) // registry bytes only
	rate := shape.Mbit(25)
	spec := shape.Spec{Up: rate, Down: rate}
	// The registry's uplink is shaped like a host's; its downlink (requests,
	// and the setup's pushes) is not.
	reg := newUpstreamRegistryOn(b, shape.NewLink(shape.Spec{Up: rate}))
	links := make([]*shape.Link, hosts)
	for i := range links {
		links[i] = shape.NewLink(spec)
	}
	// A scheduler, as in the shaped swarm of the scheduler benchmarks
	// (DF_BENCH_SCHEDULERS=0: DHT discovery only).
	scheds := 1
	if v, err := strconv.Atoi(os.Getenv("DF_BENCH_SCHEDULERS")); err == nil && v >= 0 && v <= 3 {
		scheds = v
	}
	opts := []testnet.Option{}
	if f := os.Getenv("DF_BENCH_LOG"); f != "" { // every node's log, for looking into a run
		w, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		opts = append(opts, testnet.WithLogger(slog.New(slog.NewTextHandler(w, nil))))
	}
	c := startNodes(b, hosts, append(opts,
		testnet.WithSchedulers(scheds),
		testnet.WithLinks(func(i int) *shape.Link { return links[i] }),
		testnet.WithNodeOptions(func(int) []node.Option { return nil }), // the conductor's defaults
		testnet.WithConfig(func(_ int, cfg *node.Config) { cfg.Host.UploadCapacity.Set(fmt.Sprint(rate)) }))...)
	cfg := testConfig(reg)
	cfg.UpstreamTimeout = 2 * time.Minute
	cfg.ReadyTimeout = 5 * time.Minute
	mirrors := make([]*mirrorServer, hosts)
	for i := range mirrors {
		mirrors[i] = startMirror(b, c.Node(i).Downloader(), cfg)
	}

	var p2p, direct time.Duration
	var regBytes, imageBytes int64
	iter := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		ref := fmt.Sprintf("library/swarm%d:v1", iter)
		iter++
		img := testImage(b, reg, ref, layerSize, layers)
		size := imageSize(b, img)
		imageBytes += size
		b.StartTimer()

		start := time.Now()
		took := pullEach(b, hosts, func(i int) error {
			return testnet.PullImage(context.Background(), mirrors[i].Host, ref)
		})
		p2p += time.Since(start)
		b.Logf("pulls through the mirrors done: first %v, p50 %v, last %v", took[0].Round(time.Millisecond),
			took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
		up := make([]string, hosts)
		for i, l := range links {
			sent, _, _ := l.Stats()
			up[i] = fmt.Sprintf("%.0f", float64(sent)/(1<<20))
		}
		b.Logf("MiB sent by each host so far: %s", strings.Join(up, " "))
		regBytes += reg.totalBlobBytes()
		b.Logf("16 pulls through the mirrors: %v, registry blob bytes %.3f× the image", time.Since(start).Round(time.Millisecond),
			float64(reg.totalBlobBytes())/float64(size))

		reg.resetCounts()
		if skipDirect {
			continue
		}
		// Baseline: the same pulls straight to the registry.
		start = time.Now()
		pullEach(b, hosts, func(i int) error { return pullDirect(reg.Host, ref, links[i]) })
		direct += time.Since(start)
		b.Logf("16 pulls straight to the registry: %v", time.Since(start).Round(time.Millisecond))
	}
	b.StopTimer()
	b.ReportMetric(p2p.Seconds()/float64(b.N), "mirror-s")
	if !skipDirect {
		b.ReportMetric(direct.Seconds()/float64(b.N), "registry-s")
		b.ReportMetric(p2p.Seconds()/direct.Seconds(), "mirror/registry")
	}
	b.ReportMetric(float64(regBytes)/float64(imageBytes), "registry-bytes/image")
}

// imageSize is the bytes of an image's blobs (layers and config).
func imageSize(b *testing.B, img v1.Image) int64 {
	b.Helper()
	ls, err := img.Layers()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		b.Fatal(err)
	}
	n := int64(len(raw))
	for _, l := range ls {
		s, err := l.Size()
		if err != nil {
			b.Fatal(err)
		}
		n += s
	}
	return n
}

// pullEach runs pull(i) for every host at once, fails on any error, and
// returns the pulls' durations, shortest first.
func pullEach(b *testing.B, hosts int, pull func(i int) error) []time.Duration {
	b.Helper()
	errs := make([]error, hosts)
	took := make([]time.Duration, hosts)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Go(func() { errs[i] = pull(i); took[i] = time.Since(start) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			b.Fatalf("host %d: %v", i, err)
		}
	}
	slices.Sort(took)
	return took
}

// pullDirect pulls ref from the registry at host with crane, every
// connection going through link (the host's shaped link).
func pullDirect(host, ref string, link *shape.Link) error {
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return link.Conn(c), nil
	}}
	defer tr.CloseIdleConnections()
	return testnet.PullImage(context.Background(), host, ref, crane.WithTransport(tr))
}
