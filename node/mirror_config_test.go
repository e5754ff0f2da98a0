package node

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dragonfly-p2p/df/node/mirror"
)

// decodeStrict decodes YAML over the defaults as clikit.LoadConfig does
// (unknown keys are errors).
func decodeStrict(t *testing.T, src string) (Config, error) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ClusterSecretFile = "/etc/secret"
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	err := dec.Decode(&cfg)
	return cfg, err
}

func TestMirrorConfigSection(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		cfg, err := decodeStrict(t, "data-dir: /tmp/x\n")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Mirror.Enabled || cfg.Mirror.DefaultRegistry != "" {
			t.Fatalf("mirror on by default: %+v", cfg.Mirror)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("configured registries only", func(t *testing.T) {
		cfg, err := decodeStrict(t, `
mirror:
  enabled: true
  listen: 127.0.0.1:65001
  default-registry: docker.io
  registries:
    - name: docker.io
      public-repositories: ["library/*"]
    - name: registry.internal
      scheme: http
`)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := len(cfg.Mirror.Registries); got != 2 {
			t.Fatalf("%d registries, want 2", got)
		}
		if cfg.Mirror.Listen != mirror.DefaultListen {
			t.Fatalf("listen %q", cfg.Mirror.Listen)
		}
	})
	for _, tc := range []struct {
		name, yaml string
		decodeErr  bool // the strict decoder refuses it; else Validate does
	}{
		{"unknown key", "mirror:\n  enabled: true\n  open-proxy: true\n", true},
		{"non-loopback listen", "mirror:\n  enabled: true\n  listen: 0.0.0.0:65001\n  default-registry: docker.io\n  registries: [{name: docker.io}]\n", false},
		{"default registry not listed", "mirror:\n  enabled: true\n  default-registry: ghcr.io\n  registries: [{name: docker.io}]\n", false},
		{"bad scheme", "mirror:\n  enabled: true\n  registries: [{name: docker.io, scheme: ftp}]\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := decodeStrict(t, tc.yaml)
			if tc.decodeErr {
				if err == nil {
					t.Fatal("strict decoding accepted it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if !errors.Is(err, mirror.ErrInvalidConfig) || !strings.Contains(err.Error(), "mirror:") {
				t.Fatalf("Validate = %v, want a mirror: ErrInvalidConfig", err)
			}
		})
	}
}
