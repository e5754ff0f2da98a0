package testnet_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/testnet"
)

// TestDaemonsServeTheRegistryMirror: real dfnode processes started with
// --mirror serve an image from a real registry; crane and skopeo pull it
// through different nodes and the registry sends each blob about once.
func TestDaemonsServeTheRegistryMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries")
	}
	reg, err := testnet.NewRegistry("library/app:v1", 4<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	bin := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := testnet.StartProcsWithScheduler(ctx, filepath.Join(t.TempDir(), "cluster"), bin, 3, map[int]bool{0: true}, func(i int) []string {
		return []string{"--mirror", "--mirror-listen", "127.0.0.1:0", "--mirror-registry", reg.Host() + "=" + reg.URL()}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	mirrors := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		if mirrors[i] = n.Mirror; n.Mirror == "" {
			t.Fatalf("%s reports no mirror address", n.Name)
		}
	}

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for k, i := range []int{1, 2} {
		wg.Go(func() {
			if err := testnet.PullImage(ctx, mirrors[i], reg.Ref()); err != nil {
				errs[k] = fmt.Errorf("crane via node%d: %w", i, err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ratio := float64(reg.BlobBytes()) / float64(reg.ImageBytes())
	t.Logf("2 pulls through 2 nodes: registry blob bytes %.2f× the image's layers", ratio)
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
			"docker://"+mirrors[0]+"/"+reg.Ref(), "dir:"+filepath.Join(dir, "img")).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo copy through node0's mirror: %v\n%s", err, out)
		}
	}
}
