package testnet_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/dragonfly-p2p/df/testnet"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDaemonsServeTheRegistryMirror: real dfnode processes started with
// --mirror serve an image from a real registry; crane and skopeo pull it
// through two different nodes and the registry sends each blob about once.
func TestDaemonsServeTheRegistryMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries")
	}
	var blobGets, blobBytes atomic.Int64
	regHandler := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			blobGets.Add(1)
			w = &countingResponse{ResponseWriter: w, n: &blobBytes}
		}
		regHandler.ServeHTTP(w, r)
	}))
	defer reg.Close()
	regHost := strings.TrimPrefix(reg.URL, "http://")
	img, err := random.Image(4<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := crane.Push(img, regHost+"/library/app:v1", crane.Insecure); err != nil {
		t.Fatal(err)
	}
	blobGets.Store(0)
	var imageBytes int64
	layers, _ := img.Layers()
	for _, l := range layers {
		n, _ := l.Size()
		imageBytes += n
	}
	cfgBlob, _ := img.RawConfigFile()
	imageBytes += int64(len(cfgBlob))

	bin := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mirrors := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	c, err := testnet.StartProcsWithScheduler(ctx, filepath.Join(t.TempDir(), "cluster"), bin, 3, map[int]bool{0: true}, func(i int) []string {
		return []string{"--mirror", "--mirror-listen", mirrors[i], "--mirror-registry", regHost + "=" + reg.URL}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for k, i := range []int{1, 2} {
		wg.Go(func() {
			pulled, err := crane.Pull(mirrors[i]+"/library/app:v1", crane.Insecure)
			if err != nil {
				errs[k] = fmt.Errorf("crane via node%d: %w", i, err)
				return
			}
			layers, err := pulled.Layers()
			if err != nil {
				errs[k] = err
				return
			}
			for _, l := range layers {
				rc, err := l.Compressed()
				if err == nil {
					_, err = io.Copy(io.Discard, rc) // verifies the digest
					rc.Close()
				}
				if err != nil {
					errs[k] = fmt.Errorf("crane via node%d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ratio := float64(blobBytes.Load()) / float64(imageBytes)
	t.Logf("2 pulls through 2 nodes: registry blob GETs %d, blob bytes %.2f× the image", blobGets.Load(), ratio)
	if ratio > 1.2 {
		t.Fatalf("the registry sent %.2f× the image's blob bytes for 2 pulls", ratio)
	}
	if skopeo, err := exec.LookPath("skopeo"); err == nil {
		dir := t.TempDir()
		policy := filepath.Join(dir, "policy.json")
		if err := writeFile(policy, `{"default":[{"type":"insecureAcceptAnything"}]}`); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(ctx, skopeo, "--policy", policy, "copy", "--src-tls-verify=false", "--src-no-creds",
			"docker://"+mirrors[0]+"/library/app:v1", "dir:"+filepath.Join(dir, "img")).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo copy through node0's mirror: %v\n%s", err, out)
		}
	}
}

type countingResponse struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingResponse) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}
