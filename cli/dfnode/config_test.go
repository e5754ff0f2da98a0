package dfnode

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runDfnode(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// dfnode config containerd writes hosts.toml with the mirror first and the
// registry kept, backs up a hosts.toml it did not write and restores it on
// --remove.
func TestConfigContainerd(t *testing.T) {
	dir := t.TempDir()
	own := filepath.Join(dir, "ghcr.io", "hosts.toml")
	if err := os.MkdirAll(filepath.Dir(own), 0o755); err != nil {
		t.Fatal(err)
	}
	original := "server = \"https://ghcr.io\"\n# the operator's own\n"
	if err := os.WriteFile(own, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runDfnode(t, "config", "containerd", "--hosts-dir", dir, "--registry", "docker.io", "--registry", "ghcr.io", "--mirror", "http://127.0.0.1:65001")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, reg := range []string{"docker.io", "ghcr.io"} {
		b, err := os.ReadFile(filepath.Join(dir, reg, "hosts.toml"))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, want := range []string{"server =", `[host."http://127.0.0.1:65001"]`, `"pull"`, `"resolve"`, "dial_timeout"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s hosts.toml lacks %q:\n%s", reg, want, s)
			}
		}
		if strings.Contains(s, `"push"`) {
			t.Errorf("%s: the mirror must not take pushes:\n%s", reg, s)
		}
	}
	if _, err := os.Stat(own + ".dfnode-backup"); err != nil {
		t.Fatalf("no backup of the operator's hosts.toml: %v", err)
	}
	if out, err := runDfnode(t, "config", "containerd", "--hosts-dir", dir, "--registry", "ghcr.io", "--remove"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, err := os.ReadFile(own); err != nil || string(b) != original {
		t.Fatalf("after --remove: %q, %v; want the original back", b, err)
	}
	if out, err := runDfnode(t, "config", "containerd", "--hosts-dir", dir, "--registry", "docker.io", "--restore"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "docker.io", "hosts.toml")); !os.IsNotExist(err) {
		t.Fatalf("--restore left docker.io's hosts.toml written by dfnode: %v", err)
	}
	if _, err := runDfnode(t, "config", "containerd", "--hosts-dir", dir); err == nil {
		t.Fatal("no --registry accepted")
	}
}

// dfnode config docker prints daemon.json with the mirror first, other keys
// kept.
func TestConfigDocker(t *testing.T) {
	file := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(file, []byte(`{"log-driver":"journald","registry-mirrors":["https://other.example"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runDfnode(t, "config", "docker", "--file", file, "--mirror", "http://127.0.0.1:65001")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got struct {
		LogDriver string   `json:"log-driver"`
		Mirrors   []string `json:"registry-mirrors"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.LogDriver != "journald" || len(got.Mirrors) != 2 || !strings.HasPrefix(got.Mirrors[0], "http://127.0.0.1:65001") {
		t.Fatalf("daemon.json: %s", out)
	}
}
