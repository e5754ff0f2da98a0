package mirror_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/dragonfly-p2p/df/node/mirror/runtimeconfig"
)

// needBinary skips the test when a client is not installed.
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// clientRequests returns the registry requests a client sent directly
// (not through the mirror), by User-Agent substring.
func clientRequests(u *upstreamRegistry, ua string) []string {
	var out []string
	for _, p := range u.seen() {
		if strings.Contains(strings.ToLower(p), ua) {
			out = append(out, p)
		}
	}
	return out
}

// TestSkopeoCopyThroughMirror: skopeo copies an image from the mirror (the
// mirror's default registry is the test registry).
func TestSkopeoCopyThroughMirror(t *testing.T) {
	skopeo := needBinary(t, "skopeo")
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "library/app:v1", 1<<20+4096, 3)
	c := startNodes(t, 1)
	ms := startMirror(t, c.Node(0).Downloader(), testConfig(reg))

	home := t.TempDir()
	policy := filepath.Join(home, "policy.json")
	_ = os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600)
	regconf := filepath.Join(home, "registries.conf")
	_ = os.WriteFile(regconf, nil, 0o600)
	dest := filepath.Join(t.TempDir(), "image")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, skopeo, "--policy", policy, "copy", "--src-tls-verify=false", "--src-no-creds",
		"docker://"+ms.Host+"/library/app:v1", "dir:"+dest)
	cmd.Env = append(os.Environ(), "HOME="+home, "CONTAINERS_REGISTRIES_CONF="+regconf, "REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if _, err := os.Stat(filepath.Join(dest, d.Hex)); err != nil {
			t.Fatalf("layer %s not copied: %v", d, err)
		}
	}
	if direct := clientRequests(reg, "skopeo"); len(direct) > 0 {
		t.Fatalf("skopeo reached the registry directly: %v", direct)
	}
}

// startContainerd starts a real containerd as root with its root, state
// and sockets in a temporary directory, and returns its socket. It skips
// the test when containerd or ctr is missing, or without root.
func startContainerd(t *testing.T) (ctr, sock string) {
	t.Helper()
	ctr = needBinary(t, "ctr")
	containerd := needBinary(t, "containerd")
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root")
	}
	dir := t.TempDir()
	sock = filepath.Join(dir, "c.sock")
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.opt"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	_ = os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o600)
	dctx, stop := context.WithCancel(context.Background())
	daemon := exec.CommandContext(dctx, containerd, "--config", filepath.Join(dir, "config.toml"), "--log-level", "error")
	logf, _ := os.Create(filepath.Join(dir, "containerd.log"))
	daemon.Stdout, daemon.Stderr = logf, logf
	if err := daemon.Start(); err != nil {
		t.Skipf("cannot start containerd: %v", err)
	}
	t.Cleanup(func() {
		stop()
		_ = daemon.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return ctr, sock
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Skipf("containerd did not start:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestContainerdFetchThroughMirror: containerd (ctr content fetch
// --hosts-dir) with a hosts.toml written by runtimeconfig resolves and
// fetches through the mirror, which it addresses with ?ns=.
func TestContainerdFetchThroughMirror(t *testing.T) {
	ctr, sock := startContainerd(t)
	reg := newUpstreamRegistry(t)
	img := testImage(t, reg, "library/app:v1", 1<<20+4096, 3)
	c := startNodes(t, 1)
	cfg := testConfig(reg)
	cfg.DefaultRegistry = "none" // containerd must name the registry with ns
	ms := startMirror(t, c.Node(0).Downloader(), cfg)

	hostsDir := filepath.Join(t.TempDir(), "certs.d")
	if _, err := runtimeconfig.WriteContainerdHosts(hostsDir, runtimeconfig.ContainerdHost{
		Registry: reg.Host, Server: "http://" + reg.Host, Mirror: ms.URL,
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ctr, "--address", sock, "--namespace", "dftest", "content", "fetch",
		"--hosts-dir", hostsDir, reg.Host+"/library/app:v1").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr content fetch: %v\n%s", err, out)
	}
	if direct := clientRequests(reg, "containerd"); len(direct) > 0 {
		t.Fatalf("containerd fell back to the registry: %v\nmirror log:\n%s", direct, ms.Logs.String())
	}
	layers, _ := img.Layers()
	logs := ms.Logs.String()
	for _, l := range layers {
		d, _ := l.Digest()
		if !strings.Contains(logs, d.String()) {
			t.Fatalf("layer %s was not fetched through the mirror", d)
		}
	}
	// The content is in containerd's store, verified by containerd.
	out, err = exec.CommandContext(ctx, ctr, "--address", sock, "--namespace", "dftest", "content", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr content ls: %v\n%s", err, out)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		if !strings.Contains(string(out), d.String()) {
			t.Fatalf("layer %s missing from containerd's store:\n%s", d, out)
		}
	}
}

// TestContainerdImagePullThroughMirror: `ctr images pull --hosts-dir`
// pulls an image through the mirror and unpacks it (native snapshotter):
// containerd resolves the tag, fetches every blob through the mirror,
// checks their digests and the config's diff IDs, and registers the image.
func TestContainerdImagePullThroughMirror(t *testing.T) {
	ctr, sock := startContainerd(t)
	reg := newUpstreamRegistry(t)
	img, err := random.Image(1<<20+4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	// A platform, so that containerd's default matcher takes the manifest.
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = runtime.GOOS, runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	reg.push(t, "library/unpack:v1", img)
	c := startNodes(t, 1)
	cfg := testConfig(reg)
	cfg.DefaultRegistry = "none"
	ms := startMirror(t, c.Node(0).Downloader(), cfg)

	hostsDir := filepath.Join(t.TempDir(), "certs.d")
	if _, err := runtimeconfig.WriteContainerdHosts(hostsDir, runtimeconfig.ContainerdHost{
		Registry: reg.Host, Server: "http://" + reg.Host, Mirror: ms.URL,
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ref := reg.Host + "/library/unpack:v1"
	out, err := exec.CommandContext(ctx, ctr, "--address", sock, "--namespace", "dftest", "images", "pull",
		"--hosts-dir", hostsDir, "--snapshotter", "native", ref).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images pull: %v\n%s\nmirror log:\n%s", err, out, ms.Logs.String())
	}
	if direct := clientRequests(reg, "containerd"); len(direct) > 0 {
		t.Fatalf("containerd fell back to the registry: %v", direct)
	}
	layers, _ := img.Layers()
	logs := ms.Logs.String()
	for _, l := range layers {
		d, _ := l.Digest()
		if !strings.Contains(logs, d.String()) {
			t.Fatalf("layer %s was not fetched through the mirror", d)
		}
	}
	out, err = exec.CommandContext(ctx, ctr, "--address", sock, "--namespace", "dftest", "images", "check").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images check: %v\n%s", err, out)
	}
	var line string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, ref) {
			line = l
		}
	}
	if !strings.Contains(line, "complete") {
		t.Fatalf("image not complete in containerd:\n%s", out)
	}
	// Unpacked: one committed snapshot per layer.
	out, err = exec.CommandContext(ctx, ctr, "--address", sock, "--namespace", "dftest", "snapshots",
		"--snapshotter", "native", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr snapshots ls: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "Committed"); n != len(layers) {
		t.Fatalf("%d committed snapshots, want %d:\n%s", n, len(layers), out)
	}
}
