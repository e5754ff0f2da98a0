package testnet_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/testnet"
)

// buildBinaries compiles the CLIs once into a temporary directory.
func buildBinaries(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", bin+"/", "../cli/cmd/dfnode", "../cli/cmd/dfget", "../cli/cmd/dfcache", "../cli/cmd/scheduler", "../cli/cmd/manager")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The demo, run against real binaries: the README's main command in small.
func TestDemoWithRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries")
	}
	bin := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := testnet.Demo(ctx, testnet.DemoOptions{BinDir: bin, Dir: t.TempDir(), Nodes: 3, Size: 8 << 20, Out: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"identical ✔", "origin served", "digests verified ✔", "registry sent",
		"manager console: http://127.0.0.1:", "job 1 succeeded", "job 2 succeeded", "origin served 0B more"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q", want)
		}
	}
}

// The CLIs' exit codes and refusals against a real daemon.
func TestCLIExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries")
	}
	bin := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	c, err := testnet.StartProcs(ctx, filepath.Join(dir, "cluster"), bin, 1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	file := filepath.Join(dir, "in")
	os.WriteFile(file, []byte("hello dragonfly"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink("/etc/passwd", link)
	id, err := c.Run(ctx, 0, "dfcache", "import", file)
	if err != nil {
		t.Fatal(err)
	}
	id = strings.TrimSpace(id)
	existing := filepath.Join(dir, "existing")
	os.WriteFile(existing, []byte("keep"), 0o600)
	tests := []struct {
		name string
		bin  string
		args []string
		code int
	}{
		{"stat ok", "dfcache", []string{"stat", id}, 0},
		{"stat missing", "dfcache", []string{"stat", "--local", strings.Repeat("0", 64)}, 3},
		{"bad task ID", "dfcache", []string{"stat", "../etc"}, 2},
		{"import symlink", "dfcache", []string{"import", link}, 2},
		{"import device", "dfcache", []string{"import", "/dev/zero"}, 2},
		{"export over existing file", "dfcache", []string{"export", id, "-O", existing}, 2},
		{"export into proc", "dfcache", []string{"export", id, "-O", "/proc/self/x", "--force"}, 2},
		{"unknown flag", "dfget", []string{"--nope"}, 2},
		{"no daemon", "dfcache", []string{"stat", id, "--socket", filepath.Join(dir, "none.sock")}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, filepath.Join(bin, tt.bin), tt.args...)
			cmd.Env = append(os.Environ(), "DFNODE_SOCKET="+c.Nodes[0].Socket)
			out, _ := cmd.CombinedOutput()
			if got := cmd.ProcessState.ExitCode(); got != tt.code {
				t.Fatalf("exit code %d, want %d\n%s", got, tt.code, out)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Fatal("an existing file was overwritten")
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
