package testnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dragonfly-p2p/df/protocol/units"
)

// DemoOptions configure Demo.
type DemoOptions struct {
	BinDir string
	Dir    string
	Nodes  int
	Size   int64
	Out    io.Writer
	// Temporary: Dir is removed when the demo ends (the summary says so).
	Temporary bool
}

// Demo runs the showcase: a cluster of real dfnode processes (node 0 a
// seed), a file imported on one node and exported on another, and a URL
// downloaded by every node at once from a local origin, with what came from
// peers and what from the origin.
func Demo(ctx context.Context, o DemoOptions) error {
	w := o.Out
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	origin, err := NewOrigin()
	if err != nil {
		return err
	}
	defer origin.Close()
	file := demoBytes(o.Size, 1)
	origin.Put("/models/demo.bin", file, `"demo-v1"`)

	// An image in a local registry that every node's mirror serves.
	reg, err := NewRegistry("library/demo:v1", max(o.Size/3, 1<<20), 3)
	if err != nil {
		return err
	}
	defer reg.Close()
	say("▶ starting a manager, a scheduler and %d dfnode processes on 127.0.0.1 (node0 is a seed peer; even nodes in idc-a, odd in idc-b)", o.Nodes)
	c, err := StartProcsWithManager(ctx, o.Dir, o.BinDir, o.Nodes, map[int]bool{0: true}, func(i int) []string {
		return []string{"--idc", fmt.Sprintf("idc-%c", 'a'+i%demoIDCs), "--location", fmt.Sprintf("cn|zj|hz|zone%d|c1", i%demoIDCs),
			"--mirror", "--mirror-listen", "127.0.0.1:0", "--mirror-registry", reg.Host() + "=" + reg.URL()}
	})
	if err != nil {
		return err
	}
	defer c.Stop()
	say("  manager    %s/   (console and API; sign in as root, password %s)", c.Manager.BaseURL, c.Manager.Password)
	say("  scheduler  %s", c.Scheduler.Addrs[0])
	for _, n := range c.Nodes {
		role := ""
		if n.Seed {
			role = "  (seed)"
		}
		say("  %s  %s%s", n.Name, n.Addrs[0], role)
	}
	if err := waitMesh(ctx, c); err != nil {
		return err
	}

	// 1. dfcache: data that exists only on one host.
	data := demoBytes(o.Size/2, 2)
	in := filepath.Join(o.Dir, "build-output.bin")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		return err
	}
	start := time.Now()
	id, err := c.Run(ctx, 1, "dfcache", "import", in)
	if err != nil {
		return err
	}
	id = strings.TrimSpace(id)
	say("\n▶ dfcache import on node1: %s → task %s… (%.2fs)", units.ByteSize(len(data)), id[:16], time.Since(start).Seconds())
	outPath := filepath.Join(o.Dir, "exported.bin")
	var exp struct {
		Bytes     int64   `json:"bytes"`
		FromPeers int64   `json:"bytes_from_peers"`
		Seconds   float64 `json:"seconds"`
	}
	last := len(c.Nodes) - 1
	js, err := c.Run(ctx, last, "dfcache", "export", id, "-O", outPath, "-o", "json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(js), &exp); err != nil {
		return fmt.Errorf("dfcache export output: %w", err)
	}
	got, err := os.ReadFile(outPath)
	if err != nil {
		return err
	}
	same := "identical ✔"
	if !bytes.Equal(got, data) {
		same = "DIFFERENT ✘"
	}
	say("▶ dfcache export on %s: %s in %.2fs, %s from peers — %s", c.Nodes[last].Name, units.ByteSize(exp.Bytes), exp.Seconds, units.ByteSize(exp.FromPeers), same)
	if !bytes.Equal(got, data) {
		return fmt.Errorf("exported bytes differ from the imported ones")
	}

	// 2. dfget: every node downloads the same URL at the same moment.
	url := origin.URL("/models/demo.bin")
	say("\n▶ dfget %s on all %d nodes at once (%s)", url, len(c.Nodes), units.ByteSize(len(file)))
	type result struct {
		Bytes      int64   `json:"bytes"`
		FromPeers  int64   `json:"bytes_from_peers"`
		FromSource int64   `json:"bytes_from_source"`
		Seconds    float64 `json:"seconds"`
		err        error
	}
	results := make([]result, len(c.Nodes))
	before := origin.BytesServed()
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Go(func() {
			dst := filepath.Join(o.Dir, fmt.Sprintf("demo-%d.bin", i))
			js, err := c.Run(ctx, i, "dfget", url, "-O", dst, "-o", "json")
			if err == nil {
				err = json.Unmarshal([]byte(js), &results[i])
			}
			if err == nil {
				err = sameFile(dst, file)
			}
			results[i].err = err
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			return fmt.Errorf("%s: %w", c.Nodes[i].Name, r.err)
		}
		say("  %s  %s in %.2fs   from peers %-10s from origin %s", c.Nodes[i].Name, units.ByteSize(r.Bytes), r.Seconds, units.ByteSize(r.FromPeers), units.ByteSize(r.FromSource))
	}
	served := origin.BytesServed() - before
	say("  origin served %s for %d × %s: %.2f × the file (without P2P: %d ×)",
		units.ByteSize(served), len(c.Nodes), units.ByteSize(len(file)), float64(served)/float64(len(file)), len(c.Nodes))
	explainPerIDC(say, len(c.Nodes), float64(served)/float64(len(file)))
	// 3. the registry mirror: every node pulls the same image at once.
	names, mirrors := make([]string, len(c.Nodes)), make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		names[i], mirrors[i] = n.Name, n.Mirror
	}
	if err := pullThroughMirrors(ctx, reg, say, names, mirrors); err != nil {
		return err
	}

	// 4. preheat: the manager has the seed peer fetch a URL and an image.
	if err := demoPreheat(ctx, c, o.Dir, origin, o.Size, say); err != nil {
		return err
	}

	if m, err := c.Scheduler.Metrics(ctx, "dragonfly_scheduler_"); err == nil {
		say("\n▶ the scheduler's view (%s/metrics)", c.Scheduler.OpsAddr)
		say("  decisions: parents %.0f, more parents %.0f, back-to-source %.0f, waits %.0f; seed peers triggered %.0f",
			m[`dragonfly_scheduler_decisions_total{result="parents"}`], m[`dragonfly_scheduler_decisions_total{result="more-parents"}`],
			m[`dragonfly_scheduler_decisions_total{result="back-to-source"}`], m[`dragonfly_scheduler_decisions_total{result="wait"}`],
			m["dragonfly_scheduler_seed_triggers_total"])
		say("  traffic reported by peers: %s from peers, %s from the origin",
			units.ByteSize(int64(m[`dragonfly_scheduler_traffic_bytes_total{type="peer"}`])),
			units.ByteSize(int64(m[`dragonfly_scheduler_traffic_bytes_total{type="back-to-source"}`])))
		if raw, err := os.ReadFile(filepath.Join(o.Dir, "scheduler.log")); err == nil {
			say("  parent choices (child ← parents, host@IDC):")
			shown := 0
			for _, line := range strings.Split(string(raw), "\n") {
				child, parents, ok := parentsLine(line)
				if !ok || shown == 8 {
					continue
				}
				say("    %s ← %s", child, parents)
				shown++
			}
		}
	}
	say("\nmanager console: %s/  (root / %s)", c.Manager.BaseURL, c.Manager.Password)
	if o.Temporary {
		say("logs and data: %s (removed on exit; --keep keeps them)", o.Dir)
	} else {
		say("logs and data: %s", o.Dir)
	}
	return nil
}

// parentsLine extracts child and parents from a scheduler "parents" log line.
func parentsLine(line string) (child, parents string, ok bool) {
	if !strings.Contains(line, "msg=parents") {
		return "", "", false
	}
	field := func(key string) string {
		i := strings.Index(line, key+"=")
		if i < 0 {
			return ""
		}
		v := line[i+len(key)+1:]
		if strings.HasPrefix(v, `"`) {
			if j := strings.Index(v[1:], `"`); j >= 0 {
				return v[1 : j+1]
			}
		}
		if j := strings.IndexByte(v, ' '); j >= 0 {
			return v[:j]
		}
		return v
	}
	return field("child"), field("parents"), true
}

// waitMesh waits until every node sees the others (their DHT finds it).
func waitMesh(ctx context.Context, c *ProcCluster) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return WaitFor(wctx, 100*time.Millisecond, func() bool {
		for i := range c.Nodes {
			if _, err := c.Run(wctx, i, "dfnode", "id"); err != nil {
				return false
			}
		}
		return true
	})
}

func demoBytes(n int64, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sameFile(path string, want []byte) error {
	got, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		a, b := sha256.Sum256(got), sha256.Sum256(want)
		return fmt.Errorf("%s: content %s…, want %s…", path, hex.EncodeToString(a[:6]), hex.EncodeToString(b[:6]))
	}
	return nil
}

// demoIDCs is how many IDCs the demo's nodes are spread over (node i in
// idc-a, idc-b, … by i modulo demoIDCs).
const demoIDCs = 2

// explainPerIDC says why the origin served more than one copy when the
// nodes span several IDCs: under the scheduler's default cross-idc policy
// ("source") the first peer of an IDC that holds none of a task fetches
// it from the origin rather than over the inter-IDC link.
func explainPerIDC(say func(string, ...any), nodes int, copies float64) {
	if idcs := min(nodes, demoIDCs); idcs > 1 && copies > 1.05 {
		say("  (one copy for each of the %d IDCs: with cross-idc: source, the scheduler's default, an IDC's first peer fetches from the origin rather than across IDCs; see docs/scheduler.md)", idcs)
	}
}
