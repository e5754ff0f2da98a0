package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/protocol/admission"
	"github.com/dragonfly-p2p/df/protocol/units"
	"github.com/dragonfly-p2p/df/storage"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.ClusterSecretFile = "/etc/secret"
		return c
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" means valid
	}{
		{"defaults with a secret", func(*Config) {}, ""},
		{"no secret file", func(c *Config) { c.ClusterSecretFile = "" }, "cluster-secret-file is required"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "data-dir"},
		{"bad listen", func(c *Config) { c.Listen = []string{"127.0.0.1:4001"} }, "listen"},
		{"bootstrap without peer ID", func(c *Config) { c.Bootstrap = []string{"/ip4/10.0.0.1/tcp/4001"} }, "/p2p/"},
		{"bad CIDR", func(c *Config) { c.Source.AllowedNetworks = []string{"10.0.0.0/33"} }, "allowed-networks"},
		{"negative rate", func(c *Config) { c.Limits.UploadRate = -1 }, "negative"},
		{"negative uploads", func(c *Config) { c.Limits.MaxUploads = -1 }, "max-uploads"},
		{"short provide validity", func(c *Config) { c.DHT.ProvideValidity = c.DHT.ReprovideInterval }, "twice"},
		{"manager", func(c *Config) { c.Manager.URL, c.Manager.TokenFile = "https://manager:8080", "/etc/token" }, ""},
		{"manager without token", func(c *Config) { c.Manager.URL = "https://manager:8080" }, "token-file is required"},
		{"manager not http", func(c *Config) { c.Manager.URL, c.Manager.TokenFile = "ftp://manager", "/etc/token" }, "manager url"},
		{"manager without host", func(c *Config) { c.Manager.URL, c.Manager.TokenFile = "http://", "/etc/token" }, "manager url"},
		{"manager pull too often", func(c *Config) {
			c.Manager.URL, c.Manager.TokenFile, c.Manager.PullInterval = "https://m", "/etc/token", time.Millisecond
		}, "at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	if s, err := ReadSecret(write("ok", "0123456789abcdef-secret\n", 0o600)); err != nil || string(s) != "0123456789abcdef-secret" {
		t.Fatalf("good secret: %q %v", s, err)
	}
	if _, err := ReadSecret(write("empty", "\n", 0o600)); !errors.Is(err, admission.ErrWeakSecret) {
		t.Fatalf("empty secret: %v", err)
	}
	if _, err := ReadSecret(write("short", "abc", 0o600)); !errors.Is(err, admission.ErrWeakSecret) {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := ReadSecret(write("open", "0123456789abcdef-secret", 0o644)); err == nil {
		t.Fatal("accepted a world-readable secret")
	}
}

func TestUnsafeDataDirRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	if _, err := New(cfg, WithSecret([]byte("0123456789abcdef0123"))); !errors.Is(err, ErrUnsafeDataDir) {
		t.Fatalf("0777 data dir: %v", err)
	}
}

// F15: a second daemon on the same data directory fails fast.
func TestSecondDaemonOnSameDataDir(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	secret := WithSecret([]byte("0123456789abcdef0123"))
	first, err := New(cfg, secret, WithoutAPISocket())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	start := time.Now()
	if _, err := New(cfg, secret, WithoutAPISocket()); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("second daemon: %v, want ErrLocked", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %v to refuse", time.Since(start))
	}
}

func TestUploadSlots(t *testing.T) {
	cases := []struct {
		name            string
		max             int
		capacity, limit int64
		want            int
	}{
		{"explicit", 7, 0, 0, 7},
		{"unknown capacity", 0, 0, 0, 64},
		{"25 Mbit/s", 0, 25e6 / 8, 0, 2},
		{"1 Gbit/s", 0, 125e6, 0, 59},
		{"10 Gbit/s", 0, 1250e6, 0, 64},
		{"from the upload limit", 0, 0, 20 << 20, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Limits.MaxUploads = tc.max
			c.Host.UploadCapacity = units.ByteSize(tc.capacity)
			c.Limits.UploadRate = units.ByteSize(tc.limit)
			if got := c.UploadSlots(); got != tc.want {
				t.Fatalf("UploadSlots = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path, want string
		ok               bool
	}{
		{"token with newline", write("a", "dfm_abc_def\n"), "dfm_abc_def", true},
		{"empty", write("b", " \n"), "", false},
		{"two tokens", write("c", "one two\n"), "", false},
		{"missing", filepath.Join(dir, "nope"), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadToken(tt.path)
			if tt.ok != (err == nil) || got != tt.want {
				t.Fatalf("ReadToken = %q, %v", got, err)
			}
		})
	}
}
