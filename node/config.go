package node

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dragonfly-p2p/df/node/mirror"
	"github.com/dragonfly-p2p/df/protocol/admission"
	"github.com/dragonfly-p2p/df/protocol/units"
)

// Config is the dfnode configuration (YAML keys match the flags).
type Config struct {
	// DataDir holds the store, the identity key and the default socket.
	DataDir string `yaml:"data-dir"`
	// Listen are libp2p listen multiaddrs (QUIC first, TCP fallback).
	Listen []string `yaml:"listen"`
	// Bootstrap are full multiaddrs (…/p2p/<peer ID>) of peers to join through.
	Bootstrap []string `yaml:"bootstrap"`
	// ClusterSecretFile holds the shared cluster secret (≥ 16 bytes).
	ClusterSecretFile string `yaml:"cluster-secret-file"`
	// APISocket is the local API's Unix socket (default <data-dir>/dfnode.sock).
	APISocket string `yaml:"api-socket"`
	// OpsAddr serves /metrics, /livez, /readyz (empty: disabled).
	OpsAddr string `yaml:"ops-addr"`
	// Seed makes this node a seed peer: the one that goes to the origin first.
	Seed bool `yaml:"seed"`
	// Schedulers are full multiaddrs (…/p2p/<peer ID>) of the cluster's
	// schedulers; empty: peers are found through the DHT alone.
	Schedulers []string `yaml:"schedulers"`
	// Manager makes the node follow a manager: its schedulers (the ring)
	// and seed peers come from there; Schedulers stay the fallback.
	Manager ManagerConfig `yaml:"manager"`

	Host     HostConfig     `yaml:"host"`
	Storage  StorageConfig  `yaml:"storage"`
	Limits   LimitsConfig   `yaml:"limits"`
	Source   SourceConfig   `yaml:"source"`
	Download DownloadConfig `yaml:"download"`
	DHT      DHTConfig      `yaml:"dht"`
	Mirror   MirrorConfig   `yaml:"mirror"`
}

// ManagerConfig connects the node to a manager (docs/manager.md).
type ManagerConfig struct {
	// URL is the manager's base URL (http or https); empty: no manager.
	URL string `yaml:"url"`
	// TokenFile holds a personal access token with the cluster scope.
	TokenFile string `yaml:"token-file"`
	// PullInterval is how often the config is pulled without a push.
	PullInterval time.Duration `yaml:"pull-interval"`
	// KeepaliveInterval is how often a seed peer tells the manager it is up.
	KeepaliveInterval time.Duration `yaml:"keepalive-interval"`
}

// MirrorConfig enables the OCI registry mirror containerd and Docker pull
// through (see docs/mirror.md); off by default.
type MirrorConfig struct {
	Enabled       bool `yaml:"enabled"`
	mirror.Config `yaml:",inline"`
}

// HostConfig describes where this host is, for the scheduler's topology.
type HostConfig struct {
	// IDC is the data center (schedulers prefer parents in the same one).
	IDC string `yaml:"idc"`
	// Location is "country|province|city|zone|cluster" (shared prefixes
	// count as closeness).
	Location string `yaml:"location"`
	// UploadCapacity is the host's upload bandwidth per second (0: the
	// upload rate limit, or unknown).
	UploadCapacity units.ByteSize `yaml:"upload-capacity"`
}

// StorageConfig tunes the piece store.
type StorageConfig struct {
	Quota         units.ByteSize `yaml:"quota"`
	TaskTTL       time.Duration  `yaml:"task-ttl"`
	IncompleteTTL time.Duration  `yaml:"incomplete-ttl"`
	GCInterval    time.Duration  `yaml:"gc-interval"`
}

// LimitsConfig sets rates (bytes per second; 0 unlimited).
type LimitsConfig struct {
	UploadRate       units.ByteSize `yaml:"upload-rate"`
	DownloadRate     units.ByteSize `yaml:"download-rate"`
	TaskDownloadRate units.ByteSize `yaml:"task-download-rate"`
	MaxUploads       int            `yaml:"max-uploads"`
}

// SourceConfig tunes back-to-source.
type SourceConfig struct {
	// AllowedNetworks are CIDRs the origin client may reach although they
	// are private, loopback or link-local (blocked by default).
	AllowedNetworks []string `yaml:"allowed-networks"`
	// CAFiles are PEM bundles trusted besides the system pool.
	CAFiles []string `yaml:"ca-files"`
}

// DownloadConfig tunes the conductor.
type DownloadConfig struct {
	MaxParents        int           `yaml:"max-parents"`
	StreamsPerParent  int           `yaml:"streams-per-parent"`
	SourceConcurrency int           `yaml:"source-concurrency"`
	GatherWindow      time.Duration `yaml:"gather-window"`
}

// DHTConfig tunes provider records.
type DHTConfig struct {
	ReprovideInterval time.Duration `yaml:"reprovide-interval"`
	ProvideValidity   time.Duration `yaml:"provide-validity"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		DataDir: "/var/lib/dragonfly/dfnode",
		Listen: []string{
			"/ip4/0.0.0.0/udp/4001/quic-v1",
			"/ip4/0.0.0.0/tcp/4001",
		},
		OpsAddr: "127.0.0.1:4002",
		Storage: StorageConfig{
			TaskTTL:       7 * 24 * time.Hour,
			IncompleteTTL: time.Hour,
			GCInterval:    time.Minute,
		},
		Limits: LimitsConfig{MaxUploads: 0}, // automatic: see UploadSlots
		Mirror: MirrorConfig{Config: func() mirror.Config {
			c := mirror.DefaultConfig()
			c.DefaultRegistry = "" // docker.io when configured, else none: follows the registries
			return c
		}()},
		Manager: ManagerConfig{PullInterval: time.Minute, KeepaliveInterval: 15 * time.Second},
		DHT: DHTConfig{
			ReprovideInterval: time.Hour,
			ProvideValidity:   3 * time.Hour,
		},
	}
}

// UploadSlots returns how many pieces this node uploads at once:
// Limits.MaxUploads, or when 0 one slot per 2 MiB/s of upload capacity
// (Host.UploadCapacity, else Limits.UploadRate), between 2 and 64; 64 when
// the capacity is unknown. Few slots on a slow uplink make each transfer
// fast, so the pieces a parent sends are distinct and its children can
// trade them, instead of every child waiting on the same slow transfers
// (the shaped swarm: 30.4 s with 64 slots, 12.3 s with 2 at 25 Mbit/s).
func (c *Config) UploadSlots() int {
	if c.Limits.MaxUploads > 0 {
		return c.Limits.MaxUploads
	}
	capacity := c.UplinkCapacity()
	if capacity == 0 {
		return 64
	}
	return int(min(64, max(2, capacity/(2<<20))))
}

// UplinkCapacity is the host's upload bytes per second as configured:
// Host.UploadCapacity, else Limits.UploadRate, else 0 (unknown).
func (c *Config) UplinkCapacity() int64 {
	if c.Host.UploadCapacity > 0 {
		return int64(c.Host.UploadCapacity)
	}
	return max(int64(c.Limits.UploadRate), 0)
}

// SocketPath returns the API socket path.
func (c *Config) SocketPath() string {
	if c.APISocket != "" {
		return c.APISocket
	}
	return filepath.Join(c.DataDir, "dfnode.sock")
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Mirror.Enabled {
		if err := c.Mirror.Config.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("mirror: %w", err))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is required"))
	}
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("at least one listen address is required"))
	}
	for _, a := range c.Listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			errs = append(errs, fmt.Errorf("listen %q: %w", a, err))
		}
	}
	if _, err := c.BootstrapPeers(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.SchedulerPeers(); err != nil {
		errs = append(errs, err)
	}
	if len(c.Host.IDC) > 128 || len(c.Host.Location) > 256 || strings.Count(c.Host.Location, "|") > 4 {
		errs = append(errs, errors.New(`host idc (≤ 128 bytes) or location ("country|province|city|zone|cluster") too long`))
	}
	if c.Host.UploadCapacity < 0 {
		errs = append(errs, errors.New("host upload-capacity must not be negative"))
	}
	if c.ClusterSecretFile == "" {
		errs = append(errs, errors.New("cluster-secret-file is required: an open cluster is never the default (create one with: head -c 32 /dev/urandom | base64 > secret; chmod 600 secret)"))
	}
	for _, n := range c.Source.AllowedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			errs = append(errs, fmt.Errorf("source allowed-networks %q: %w", n, err))
		}
	}
	if c.Storage.Quota < 0 || c.Limits.UploadRate < 0 || c.Limits.DownloadRate < 0 || c.Limits.TaskDownloadRate < 0 {
		errs = append(errs, errors.New("sizes and rates must not be negative"))
	}
	if c.Limits.MaxUploads < 0 || c.Limits.MaxUploads > 100_000 {
		errs = append(errs, errors.New("max-uploads must be between 0 (automatic) and 100000"))
	}
	if c.Manager.URL != "" {
		if u, err := url.Parse(c.Manager.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("manager url %q: want http(s)://host:port", c.Manager.URL))
		}
		if c.Manager.TokenFile == "" {
			errs = append(errs, errors.New("manager token-file is required with a manager url (create a token with the cluster scope: POST /api/v1/tokens)"))
		}
		if c.Manager.PullInterval < time.Second || c.Manager.KeepaliveInterval < time.Second {
			errs = append(errs, errors.New("manager pull-interval and keepalive-interval must be at least 1s"))
		}
	}
	if c.DHT.ReprovideInterval <= 0 || c.DHT.ProvideValidity < 2*c.DHT.ReprovideInterval {
		errs = append(errs, errors.New("dht provide-validity must be at least twice reprovide-interval"))
	}
	return errors.Join(errs...)
}

// BootstrapPeers parses the bootstrap multiaddrs.
func (c *Config) BootstrapPeers() ([]peer.AddrInfo, error) {
	return parsePeers("bootstrap", c.Bootstrap, "dfnode id")
}

// SchedulerPeers parses the scheduler multiaddrs.
func (c *Config) SchedulerPeers() ([]peer.AddrInfo, error) {
	return parsePeers("schedulers", c.Schedulers, "scheduler id")
}

func parsePeers(what string, list []string, how string) ([]peer.AddrInfo, error) {
	var addrs []ma.Multiaddr
	for _, s := range list {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, s, err)
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("%s addresses must end in /p2p/<peer ID> (print them with `%s`): %w", what, how, err)
	}
	return infos, nil
}

// ReadSecret reads a cluster secret file: it must not be readable by group
// or others, and trailing whitespace is ignored.
func ReadSecret(path string) ([]byte, error) { return admission.ReadSecretFile(path) }
