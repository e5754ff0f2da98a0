package mirror

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/dragonfly-p2p/df/protocol/units"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultListen             = "127.0.0.1:65001"
	DefaultMaxManifestSize    = 4 * units.MiB
	DefaultMaxManifestEntries = 4096
	DefaultSmallBlobSize      = 1 * units.MiB
	DefaultAccessTTL          = 2 * time.Minute
	DefaultPublicAccessTTL    = 10 * time.Minute
	DefaultUpstreamTimeout    = 30 * time.Second
	DefaultReadyTimeout       = 60 * time.Second
	DefaultWriteStallTimeout  = 60 * time.Second
	DefaultMaxConcurrent      = 1024
	// DockerHub is the name image references use for Docker Hub.
	DockerHub = "docker.io"
	// DockerHubHost is Docker Hub's registry API host.
	DockerHubHost = "registry-1.docker.io"
)

// ErrInvalidConfig wraps every configuration problem reported by Validate.
var ErrInvalidConfig = errors.New("invalid mirror configuration")

// Config configures the mirror (the "mirror" section of dfnode's YAML).
type Config struct {
	// Listen is the TCP address served (default 127.0.0.1:65001).
	Listen string `yaml:"listen"`
	// AllowRemote permits a Listen address that is not loopback. Off by
	// default: the mirror answers only the local container runtime.
	AllowRemote bool `yaml:"allow-remote"`
	// DefaultRegistry serves requests without ?ns= (Docker's
	// registry-mirrors applies to Docker Hub only and sends none). Empty:
	// docker.io when it is configured; "none" disables the default.
	DefaultRegistry string `yaml:"default-registry"`
	// Registries are the upstream registries served; anything else is
	// refused. Empty: Docker Hub only.
	Registries []Registry `yaml:"registries"`
	// Mappings map a Host header value (host or host:port the runtime uses
	// to reach the mirror) to a registry name, for clients that send no ns.
	Mappings map[string]string `yaml:"mappings"`
	// MaxManifestSize caps a manifest's size (default 4 MiB).
	MaxManifestSize units.ByteSize `yaml:"max-manifest-size"`
	// MaxManifestEntries caps the layers of an image manifest and the
	// manifests of an index (default 4096).
	MaxManifestEntries int `yaml:"max-manifest-entries"`
	// MaxBlobSize caps a blob's size (0: the protocol's maximum).
	MaxBlobSize units.ByteSize `yaml:"max-blob-size"`
	// SmallBlobSize: blobs up to this size are verified completely before
	// the response starts (default 1 MiB).
	SmallBlobSize units.ByteSize `yaml:"small-blob-size"`
	// AccessTTL is how long an upstream confirmation that a credential may
	// read a digest in a repository is reused (default 2 m).
	AccessTTL time.Duration `yaml:"access-ttl"`
	// PublicAccessTTL is the same for public repositories (default 10 m).
	PublicAccessTTL time.Duration `yaml:"public-access-ttl"`
	// UpstreamTimeout bounds one request of the mirror to a registry or a
	// token endpoint (default 30 s).
	UpstreamTimeout time.Duration `yaml:"upstream-timeout"`
	// ReadyTimeout bounds the wait for a download's size (and, for
	// manifests and small blobs, its completion) before an error status is
	// sent, so that the runtime falls back to the registry (default 60 s).
	ReadyTimeout time.Duration `yaml:"ready-timeout"`
	// WriteStallTimeout closes a connection whose client accepts no bytes
	// for this long (default 60 s).
	WriteStallTimeout time.Duration `yaml:"write-stall-timeout"`
	// MaxConcurrentRequests answers 429 beyond this many requests in
	// flight (default 1024).
	MaxConcurrentRequests int `yaml:"max-concurrent-requests"`
}

// Registry is one upstream registry the mirror serves.
type Registry struct {
	// Name is the registry as image references and containerd's ns name
	// it: "docker.io", "ghcr.io", "registry.example.com:5000".
	Name string `yaml:"name"`
	// Host is the host[:port] of its API (default: Name; registry-1.docker.io
	// for docker.io).
	Host string `yaml:"host"`
	// Scheme is "https" (default) or "http" (a plain-HTTP registry).
	Scheme string `yaml:"scheme"`
	// CAFiles are PEM bundles trusted besides the system roots.
	CAFiles []string `yaml:"ca-files"`
	// PublicRepositories are repository patterns anyone may read: path.Match
	// patterns ("library/*"), a trailing "/**" for any depth ("org/**"), or
	// "**" for every repository. Upstream confirmations for them are shared
	// by every caller.
	PublicRepositories []string `yaml:"public-repositories"`
	// RedirectHosts are the hosts the registry redirects blob downloads to
	// (CDNs): "host", "host:port" or "*.example.com". The back-to-source
	// client must allow them too (Config.RedirectHosts).
	RedirectHosts []string `yaml:"redirect-hosts"`
	// AuthHosts are token endpoint hosts besides Host that the registry's
	// Bearer challenges may name (same syntax as RedirectHosts).
	AuthHosts []string `yaml:"auth-hosts"`
}

// DockerHubRegistry returns Docker Hub's settings: API at
// registry-1.docker.io, tokens from auth.docker.io, blobs redirected to
// Cloudflare, official images (library/*) public.
func DockerHubRegistry() Registry {
	return Registry{
		Name:               DockerHub,
		Host:               DockerHubHost,
		Scheme:             "https",
		PublicRepositories: []string{"library/*"},
		RedirectHosts:      []string{"*.cloudflare.docker.com", "*.r2.cloudflarestorage.com"},
		AuthHosts:          []string{"auth.docker.io"},
	}
}

// DefaultConfig returns the defaults: loopback listener, Docker Hub as the
// only and default registry.
func DefaultConfig() Config {
	return Config{
		Listen:                DefaultListen,
		DefaultRegistry:       DockerHub,
		Registries:            []Registry{DockerHubRegistry()},
		MaxManifestSize:       DefaultMaxManifestSize,
		MaxManifestEntries:    DefaultMaxManifestEntries,
		SmallBlobSize:         DefaultSmallBlobSize,
		AccessTTL:             DefaultAccessTTL,
		PublicAccessTTL:       DefaultPublicAccessTTL,
		UpstreamTimeout:       DefaultUpstreamTimeout,
		ReadyTimeout:          DefaultReadyTimeout,
		WriteStallTimeout:     DefaultWriteStallTimeout,
		MaxConcurrentRequests: DefaultMaxConcurrent,
	}
}

// withDefaults fills zero values.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if len(c.Registries) == 0 {
		c.Registries = d.Registries
	}
	regs := make([]Registry, len(c.Registries))
	for i, r := range c.Registries {
		regs[i] = r.withDefaults()
	}
	c.Registries = regs
	if c.DefaultRegistry == "" {
		for _, r := range c.Registries {
			if r.Name == DockerHub {
				c.DefaultRegistry = DockerHub
			}
		}
	}
	if c.DefaultRegistry == "none" {
		c.DefaultRegistry = ""
	}
	setSize := func(v *units.ByteSize, def units.ByteSize) {
		if *v == 0 {
			*v = def
		}
	}
	setSize(&c.MaxManifestSize, d.MaxManifestSize)
	setSize(&c.SmallBlobSize, d.SmallBlobSize)
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.AccessTTL, d.AccessTTL)
	setDur(&c.PublicAccessTTL, d.PublicAccessTTL)
	setDur(&c.UpstreamTimeout, d.UpstreamTimeout)
	setDur(&c.ReadyTimeout, d.ReadyTimeout)
	setDur(&c.WriteStallTimeout, d.WriteStallTimeout)
	if c.MaxManifestEntries == 0 {
		c.MaxManifestEntries = d.MaxManifestEntries
	}
	if c.MaxConcurrentRequests == 0 {
		c.MaxConcurrentRequests = d.MaxConcurrentRequests
	}
	return c
}

func (r Registry) withDefaults() Registry {
	r.Name = strings.ToLower(r.Name)
	if r.Host == "" {
		r.Host = r.Name
		if r.Name == DockerHub {
			r.Host = DockerHubHost
		}
	}
	r.Host = strings.ToLower(r.Host)
	if r.Scheme == "" {
		r.Scheme = "https"
	}
	return r
}

// Validate reports every problem at once; zero values mean "default".
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if err := checkListen(c.Listen, c.AllowRemote); err != nil {
		errs = append(errs, err)
	}
	names := make(map[string]bool)
	for i, r := range c.Registries {
		if err := r.validate(); err != nil {
			bad("registries[%d]: %w", i, err)
			continue
		}
		if names[r.Name] {
			bad("registries[%d]: registry %q listed twice", i, r.Name)
		}
		names[r.Name] = true
	}
	if c.DefaultRegistry != "" && !names[strings.ToLower(c.DefaultRegistry)] {
		bad("default-registry %q is not one of the registries", c.DefaultRegistry)
	}
	for host, reg := range c.Mappings {
		if !validHost(strings.ToLower(host)) {
			bad("mappings: %q is not a host[:port]", host)
		}
		if !names[strings.ToLower(reg)] {
			bad("mappings: %q maps to %q, which is not one of the registries", host, reg)
		}
	}
	if c.MaxManifestSize < 0 || c.MaxManifestSize > 64*units.MiB {
		bad("max-manifest-size %v outside (0, 64MiB]", c.MaxManifestSize)
	}
	if c.MaxManifestEntries < 0 || c.MaxManifestEntries > 1<<20 {
		bad("max-manifest-entries %d outside (0, 1048576]", c.MaxManifestEntries)
	}
	if c.MaxBlobSize < 0 {
		bad("max-blob-size is negative")
	}
	if c.SmallBlobSize < 0 || c.SmallBlobSize > 64*units.MiB {
		bad("small-blob-size %v outside [0, 64MiB]", c.SmallBlobSize)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"access-ttl", c.AccessTTL}, {"public-access-ttl", c.PublicAccessTTL},
		{"upstream-timeout", c.UpstreamTimeout}, {"ready-timeout", c.ReadyTimeout},
		{"write-stall-timeout", c.WriteStallTimeout},
	} {
		if d.v < 0 || d.v > 24*time.Hour {
			bad("%s %v outside (0, 24h]", d.name, d.v)
		}
	}
	if c.MaxConcurrentRequests < 0 {
		bad("max-concurrent-requests is negative")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// checkListen accepts host:port; a non-loopback host needs allowRemote.
func checkListen(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen %q: %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("listen %q: no port", addr)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("listen %q is not a loopback address: set allow-remote to serve other hosts", addr)
	}
	return nil
}

func (r Registry) validate() error {
	var errs []error
	if !validHost(r.Name) {
		errs = append(errs, fmt.Errorf("name %q is not a registry host[:port]", r.Name))
	}
	if !validHost(r.Host) {
		errs = append(errs, fmt.Errorf("host %q is not a host[:port]", r.Host))
	}
	if r.Scheme != "https" && r.Scheme != "http" {
		errs = append(errs, fmt.Errorf("scheme %q: want https or http", r.Scheme))
	}
	for _, p := range r.PublicRepositories {
		if _, err := parseRepoPattern(p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range append(append([]string(nil), r.RedirectHosts...), r.AuthHosts...) {
		if _, err := parseHostPattern(h); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range r.CAFiles {
		if f == "" {
			errs = append(errs, errors.New("empty ca-files entry"))
		}
	}
	return errors.Join(errs...)
}

// RedirectHosts returns every registry's blob redirect hosts: the node's
// back-to-source client must allow them (source.WithRedirectHosts), since
// it is the one that follows a registry's blob redirects.
func (c Config) RedirectHosts() []string {
	var out []string
	seen := make(map[string]bool)
	for _, r := range c.withDefaults().Registries {
		for _, h := range r.RedirectHosts {
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	return out
}

// repoPattern is one PublicRepositories entry.
type repoPattern struct {
	glob   string // path.Match pattern, or the prefix for a "/**" pattern
	prefix bool
	all    bool
}

func parseRepoPattern(s string) (repoPattern, error) {
	switch {
	case s == "**":
		return repoPattern{all: true}, nil
	case strings.HasSuffix(s, "/**"):
		p := strings.TrimSuffix(s, "/**")
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return repoPattern{}, fmt.Errorf("public repository pattern %q: bad prefix", s)
		}
		return repoPattern{glob: p, prefix: true}, nil
	}
	if s == "" || strings.Contains(s, "**") {
		return repoPattern{}, fmt.Errorf("public repository pattern %q: want a path.Match pattern, prefix/** or **", s)
	}
	if _, err := path.Match(s, ""); err != nil {
		return repoPattern{}, fmt.Errorf("public repository pattern %q: %w", s, err)
	}
	return repoPattern{glob: s}, nil
}

func (p repoPattern) match(repo string) bool {
	if p.all {
		return true
	}
	if p.prefix {
		// Match the pattern against the leading segments.
		n := strings.Count(p.glob, "/") + 1
		parts := strings.SplitN(repo, "/", n+1)
		if len(parts) <= n {
			return false
		}
		ok, _ := path.Match(p.glob, strings.Join(parts[:n], "/"))
		return ok
	}
	ok, _ := path.Match(p.glob, repo)
	return ok
}
