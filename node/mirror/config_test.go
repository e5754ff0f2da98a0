package mirror

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:65001" || c.DefaultRegistry != DockerHub {
		t.Fatalf("defaults: %+v", c)
	}
	// Zero values are the defaults too.
	z := Config{}.withDefaults()
	if z.Listen != DefaultListen || z.DefaultRegistry != DockerHub || len(z.Registries) != 1 ||
		z.Registries[0].Host != DockerHubHost || z.MaxManifestSize != DefaultMaxManifestSize {
		t.Fatalf("zero config: %+v", z)
	}
	if got := (Config{}).RedirectHosts(); len(got) == 0 {
		t.Fatal("no Docker Hub redirect hosts")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"non-loopback listen", func(c *Config) { c.Listen = "0.0.0.0:65001" }},
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }},
		{"default not listed", func(c *Config) { c.DefaultRegistry = "ghcr.io" }},
		{"bad registry name", func(c *Config) { c.Registries = append(c.Registries, Registry{Name: "Bad Name"}) }},
		{"duplicate registry", func(c *Config) { c.Registries = append(c.Registries, DockerHubRegistry()) }},
		{"bad scheme", func(c *Config) { c.Registries = []Registry{{Name: "docker.io", Scheme: "ftp"}} }},
		{"bad pattern", func(c *Config) { c.Registries = []Registry{{Name: "docker.io", PublicRepositories: []string{"[a"}}} }},
		{"bad redirect host", func(c *Config) { c.Registries = []Registry{{Name: "docker.io", RedirectHosts: []string{"a/b"}}} }},
		{"mapping to unknown", func(c *Config) { c.Mappings = map[string]string{"mirror.local": "ghcr.io"} }},
		{"bad mapping host", func(c *Config) { c.Mappings = map[string]string{"a b": "docker.io"} }},
		{"huge manifest cap", func(c *Config) { c.MaxManifestSize = 1 << 30 }},
		{"negative ttl", func(c *Config) { c.AccessTTL = -time.Second }},
	} {
		c := DefaultConfig()
		tc.edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	c := DefaultConfig()
	c.Listen, c.AllowRemote = "0.0.0.0:65001", true
	if err := c.Validate(); err != nil {
		t.Fatalf("allow-remote: %v", err)
	}
	c = DefaultConfig()
	c.Listen = "[::1]:65001"
	if err := c.Validate(); err != nil {
		t.Fatalf("IPv6 loopback: %v", err)
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
listen: 127.0.0.1:65001
default-registry: docker.io
registries:
  - name: docker.io
    public-repositories: ["library/*"]
    redirect-hosts: ["*.cloudflare.docker.com"]
    auth-hosts: ["auth.docker.io"]
  - name: registry.internal:5000
    scheme: http
    public-repositories: ["**"]
mappings:
  mirror.local: registry.internal:5000
max-manifest-size: 2MiB
access-ttl: 30s
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MaxManifestSize != 2<<20 || c.AccessTTL != 30*time.Second || c.Registries[1].Scheme != "http" {
		t.Fatalf("decoded %+v", c)
	}
	dec = yaml.NewDecoder(bytes.NewReader([]byte("lisen: x\n")))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err == nil {
		t.Fatal("unknown key accepted")
	}
}

func TestRepoPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, repo string
		want          bool
	}{
		{"library/*", "library/alpine", true},
		{"library/*", "library/a/b", false},
		{"library/*", "other/alpine", false},
		{"org/**", "org/a", true},
		{"org/**", "org/a/b/c", true},
		{"org/**", "org", false},
		{"org/**", "organisation/a", false},
		{"team-*/**", "team-a/x/y", true},
		{"**", "anything/at/all", true},
		{"exact/name", "exact/name", true},
	} {
		p, err := parseRepoPattern(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.match(tc.repo); got != tc.want {
			t.Errorf("%q ~ %q = %v", tc.pattern, tc.repo, got)
		}
	}
	for _, bad := range []string{"", "a/**/b", "[", "/**"} {
		if _, err := parseRepoPattern(bad); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}
