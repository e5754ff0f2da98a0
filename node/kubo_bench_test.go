package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/node/api"
)

// BenchmarkVsKubo transfers the same bytes node to node with dragonfly and
// with IPFS (kubo), which a user might pick instead, on the same machine in
// the same run. Set DF_KUBO to an ipfs binary (it is not a dependency: build
// it with `go install github.com/ipfs/kubo/cmd/ipfs@v0.39.0`).
func BenchmarkVsKubo(b *testing.B) {
	bin := os.Getenv("DF_KUBO")
	if bin == "" {
		b.Skip("DF_KUBO not set")
	}
	size := benchSize(b, 256<<20)
	dir := b.TempDir()
	file := filepath.Join(dir, "payload")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, &fillReader{left: int64(size), x: 77}); err != nil {
		b.Fatal(err)
	}
	f.Close()

	for _, toFile := range []bool{false, true} {
		sink := "to-devnull"
		if toFile {
			sink = "to-file"
		}
		b.Run("dragonfly-"+sink, func(b *testing.B) {
			c := benchCluster(b, 2)
			in, _ := os.Open(file)
			info, err := api.NewClient(c.Node(0).Socket()).Import(context.Background(), in, int64(size), api.ImportOptions{})
			in.Close()
			if err != nil {
				b.Fatal(err)
			}
			client := api.NewClient(c.Node(1).Socket())
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				s, err := client.Export(context.Background(), info.ID, false)
				if err != nil {
					b.Fatal(err)
				}
				if toFile { // as dfcache export -O does: write, fsync
					out, _ := os.Create(filepath.Join(dir, "df-out"))
					_, err = io.Copy(out, s)
					out.Sync()
					out.Close()
				} else {
					_, err = io.Copy(io.Discard, s)
				}
				s.Close()
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				client.Delete(context.Background(), info.ID)
				b.StartTimer()
			}
		})
		b.Run("kubo-"+sink, func(b *testing.B) {
			// Each invocation (b.N grows) gets fresh repositories and ports.
			kdir := b.TempDir()
			kuboPort += 10
			a := startKubo(b, bin, filepath.Join(kdir, "a"), kuboPort)
			c := startKubo(b, bin, filepath.Join(kdir, "b"), kuboPort+1)
			cid := strings.TrimSpace(a.run(b, "add", "-Q", "--cid-version=1", file))
			c.run(b, "swarm", "connect", a.addr)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				if toFile {
					c.run(b, "get", "-o", filepath.Join(kdir, "kubo-out"), cid)
				} else {
					c.runDiscard(b, "cat", cid)
				}
				b.StopTimer()
				c.run(b, "repo", "gc")
				os.Remove(filepath.Join(kdir, "kubo-out"))
				b.StartTimer()
			}
		})
	}
}

// kuboPort is the next free port pair base (kubo needs fixed ports in its config).
var kuboPort = 14000

type kubo struct {
	bin, repo, addr string
}

func (k *kubo) run(b *testing.B, args ...string) string {
	b.Helper()
	cmd := exec.Command(k.bin, args...)
	cmd.Env = append(os.Environ(), "IPFS_PATH="+k.repo)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (k *kubo) runDiscard(b *testing.B, args ...string) {
	b.Helper()
	cmd := exec.Command(k.bin, args...)
	cmd.Env = append(os.Environ(), "IPFS_PATH="+k.repo)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
}

func startKubo(b *testing.B, bin, repo string, port int) *kubo {
	k := &kubo{bin: bin, repo: repo}
	k.run(b, "init", "--profile=test", "-e")
	k.run(b, "config", "--json", "Addresses.Swarm", fmt.Sprintf(`["/ip4/127.0.0.1/udp/%d/quic-v1"]`, port))
	k.run(b, "config", "Addresses.API", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port+1000))
	k.run(b, "config", "Addresses.Gateway", "")
	cmd := exec.Command(bin, "daemon")
	cmd.Env = append(os.Environ(), "IPFS_PATH="+repo)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command(bin, "--api", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port+1000), "id").Output()
		if err == nil {
			var id struct{ ID string }
			if json.Unmarshal(out, &id) == nil && id.ID != "" {
				k.addr = fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1/p2p/%s", port, id.ID)
				return k
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("kubo daemon at %s did not start", repo)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
