package runtimeconfig

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestContainerdHostsTOML(t *testing.T) {
	b, err := ContainerdHostsTOML(ContainerdHost{Registry: "docker.io"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		`server = "https://registry-1.docker.io"`,
		`[host."http://127.0.0.1:65001"]`,
		`capabilities = ["pull", "resolve"]`,
		`dial_timeout = "200ms"`,
	} {
		if !strings.Contains(s, want) {
			t.Fatalf("missing %q in\n%s", want, s)
		}
	}
	b, _ = ContainerdHostsTOML(ContainerdHost{Registry: "_default", Mirror: "http://10.0.0.1:65001/"})
	if strings.Contains(string(b), "server =") || !strings.Contains(string(b), `[host."http://10.0.0.1:65001"]`) {
		t.Fatalf("_default:\n%s", b)
	}
	b, _ = ContainerdHostsTOML(ContainerdHost{Registry: "registry.local:5000", Server: "http://registry.local:5000"})
	if !strings.Contains(string(b), `server = "http://registry.local:5000"`) {
		t.Fatalf("port registry:\n%s", b)
	}
	for _, bad := range []ContainerdHost{
		{Registry: "../etc"}, {Registry: "a/b"}, {Registry: ""}, {Registry: "Docker.io"},
		{Registry: "docker.io", Mirror: "ftp://x"}, {Registry: "docker.io", Mirror: `http://x"]`},
		{Registry: "docker.io", Server: "http://u:p@x"}, {Registry: "docker.io", Mirror: "http://x/?q=1"},
	} {
		if _, err := ContainerdHostsTOML(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestWriteAndRemoveContainerdHosts(t *testing.T) {
	dir := t.TempDir()
	h := ContainerdHost{Registry: "docker.io"}
	// No previous file: written, then removed (directory too).
	path, err := WriteContainerdHosts(dir, h)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "docker.io", "hosts.toml") {
		t.Fatal(path)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if _, err := WriteContainerdHosts(dir, h); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := RemoveContainerdHosts(dir, "docker.io"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Fatal("empty directory left behind")
	}

	// A previous file is backed up and restored.
	orig := []byte("server = \"https://registry-1.docker.io\"\n[host.\"https://corp-mirror\"]\n  capabilities = [\"pull\"]\n")
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteContainerdHosts(dir, h); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path + BackupSuffix); string(b) != string(orig) {
		t.Fatal("backup differs")
	}
	if _, err := WriteContainerdHosts(dir, h); err != nil { // ours now: no second backup
		t.Fatal(err)
	}
	if err := RemoveContainerdHosts(dir, "docker.io"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(orig) {
		t.Fatal("original not restored")
	}
	if _, err := os.Stat(path + BackupSuffix); !os.IsNotExist(err) {
		t.Fatal("backup left behind")
	}
	// A foreign file is never removed; a stale backup is never overwritten.
	if err := RemoveContainerdHosts(dir, "docker.io"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(orig) {
		t.Fatal("foreign file touched")
	}
	_ = os.WriteFile(path+BackupSuffix, []byte("older"), 0o644)
	if _, err := WriteContainerdHosts(dir, h); !errors.Is(err, ErrBackupExists) {
		t.Fatalf("stale backup overwritten: %v", err)
	}
	// A symlink in place of hosts.toml is refused.
	_ = os.Remove(path + BackupSuffix)
	_ = os.Remove(path)
	_ = os.Symlink("/etc/passwd", path)
	if _, err := WriteContainerdHosts(dir, h); !errors.Is(err, ErrInvalid) {
		t.Fatalf("symlink: %v", err)
	}
	if _, err := HostsPath(dir, "../x"); err == nil {
		t.Fatal("traversal accepted")
	}
}

func TestDockerDaemonJSON(t *testing.T) {
	out, err := DockerDaemonJSON(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal(out, &got)
	want := map[string]any{"registry-mirrors": []any{"http://127.0.0.1:65001"}, "insecure-registries": []any{"127.0.0.1:65001"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %s", out)
	}
	existing := []byte(`{"log-driver":"json-file","registry-mirrors":["https://mirror.gcr.io","http://127.0.0.1:65001"],"insecure-registries":["127.0.0.1:65001"]}`)
	out, err = DockerDaemonJSON(existing, "http://127.0.0.1:65001")
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	_ = json.Unmarshal(out, &got)
	if got["log-driver"] != "json-file" || !reflect.DeepEqual(got["registry-mirrors"], []any{"http://127.0.0.1:65001", "https://mirror.gcr.io"}) ||
		!reflect.DeepEqual(got["insecure-registries"], []any{"127.0.0.1:65001"}) {
		t.Fatalf("merged: %s", out)
	}
	back, err := RemoveDockerMirror(out, "")
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	_ = json.Unmarshal(back, &got)
	if _, ok := got["insecure-registries"]; ok || !reflect.DeepEqual(got["registry-mirrors"], []any{"https://mirror.gcr.io"}) {
		t.Fatalf("removed: %s", back)
	}
	for _, bad := range []string{`[]`, `{"registry-mirrors":"x"}`, `{"registry-mirrors":[1]}`, `{`} {
		if _, err := DockerDaemonJSON([]byte(bad), ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s accepted", bad)
		}
	}
	out, _ = DockerDaemonJSON(nil, "https://mirror.example:65001")
	if strings.Contains(string(out), "insecure-registries") {
		t.Fatal("https mirror marked insecure")
	}
}
