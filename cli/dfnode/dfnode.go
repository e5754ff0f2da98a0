// Package dfnode is the dfnode command tree: `dfnode run` starts the
// daemon, `dfnode id` prints a running daemon's addresses.
package dfnode

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/cli/internal/daemon"
	"github.com/dragonfly-p2p/df/node"
	"github.com/dragonfly-p2p/df/node/api"
)

// EnvPrefix prefixes every flag's environment twin.
const EnvPrefix = "DFNODE"

// NewCommand returns the dfnode command.
func NewCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "dfnode",
		Short: "The dragonfly peer-to-peer distribution daemon",
		Long: `dfnode runs on every host. It fetches pieces of files and image layers from
other hosts that already have them, serves what it has to others while it is
still downloading, and goes back to the origin only for pieces nobody has.
dfget and dfcache talk to it through its local API socket.`,
	}
	root.AddCommand(newRunCommand(), newIDCommand(), newConfigCommand())
	return root
}

func newRunCommand() *cobra.Command {
	cfg := node.DefaultConfig()
	var configPath, logLevel, logFormat string
	var mirrorRegistries []string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon",
		Long: `Run the daemon until SIGINT or SIGTERM.

Configuration comes from defaults, then the YAML file given with --config,
then DFNODE_* environment variables, then flags. Every flag has an
environment twin, shown in its help. A cluster secret file is required:

  head -c 32 /dev/urandom | base64 > /etc/dragonfly/secret; chmod 600 /etc/dragonfly/secret`,
		Example: `  dfnode run --data-dir /var/lib/dragonfly/dfnode --cluster-secret-file /etc/dragonfly/secret
  dfnode run --config /etc/dragonfly/dfnode.yaml --bootstrap /ip4/10.0.0.1/udp/4001/quic-v1/p2p/12D3KooW...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clikit.LoadConfig(cmd.Flags(), &cfg, EnvPrefix, configPath, func() { cfg = node.DefaultConfig() }); err != nil {
				return clikit.UsageError(err)
			}
			if len(mirrorRegistries) > 0 {
				regs, err := parseRegistries(mirrorRegistries)
				if err != nil {
					return clikit.UsageError(err)
				}
				cfg.Mirror.Registries, cfg.Mirror.DefaultRegistry = regs, regs[0].Name
			}
			log, err := clikit.NewLogger(os.Stderr, logFormat, logLevel)
			if err != nil {
				return clikit.UsageError(err)
			}
			ctx, stop := clikit.SignalContext(cmd.Context())
			defer stop()
			reg := clikit.NewRegistry()
			n, err := node.New(cfg, node.WithLogger(log), node.WithRegisterer(reg))
			if err != nil {
				return err
			}
			runners := []clikit.Runner{n}
			if cfg.OpsAddr != "" {
				runners = append(runners, clikit.NewOpsServer(cfg.OpsAddr,
					clikit.WithGatherer(reg), clikit.WithOpsLogger(log), clikit.WithCheck("node", n.Ready)))
			}
			return clikit.RunAll(ctx, runners...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory (store, identity key, API socket); created 0700")
	f.StringSliceVar(&cfg.Listen, "listen", cfg.Listen, "libp2p listen multiaddrs (QUIC first, TCP fallback)")
	f.StringSliceVar(&cfg.Bootstrap, "bootstrap", cfg.Bootstrap, "multiaddrs of peers to join through, ending in /p2p/<peer ID> (print them with `dfnode id`)")
	f.StringVar(&cfg.ClusterSecretFile, "cluster-secret-file", cfg.ClusterSecretFile, "file holding the cluster secret (≥ 16 bytes, mode 0600)")
	f.StringVar(&cfg.APISocket, "api-socket", cfg.APISocket, "local API socket (default <data-dir>/dfnode.sock)")
	f.StringVar(&cfg.OpsAddr, "ops-addr", cfg.OpsAddr, "address for /metrics, /livez, /readyz (empty: off)")
	f.BoolVar(&cfg.Seed, "seed", cfg.Seed, "run as a seed peer: the one that goes back to the origin first")
	f.StringSliceVar(&cfg.Schedulers, "scheduler", cfg.Schedulers, "scheduler multiaddrs ending in /p2p/<peer ID> (repeatable; empty: DHT only)")
	f.StringVar(&cfg.Manager.URL, "manager", cfg.Manager.URL, "manager base URL, e.g. https://manager:8080: schedulers and seed peers come from it, cached in <data-dir>/dynconfig.json for when it is down (--scheduler stays the fallback)")
	f.StringVar(&cfg.Manager.TokenFile, "manager-token-file", cfg.Manager.TokenFile, "file holding a manager access token with the cluster scope (required with --manager)")
	f.StringVar(&cfg.Host.IDC, "idc", cfg.Host.IDC, "this host's data center (schedulers prefer parents in the same one)")
	f.StringVar(&cfg.Host.Location, "location", cfg.Host.Location, `this host's location, "country|province|city|zone|cluster"`)
	f.Var(&cfg.Host.UploadCapacity, "upload-capacity", "this host's upload bandwidth per second, e.g. 1GiB (default: --upload-rate)")
	f.Var(&cfg.Storage.Quota, "quota", "disk space the store may use, e.g. 100GiB (0: unlimited)")
	f.DurationVar(&cfg.Storage.TaskTTL, "task-ttl", cfg.Storage.TaskTTL, "evict tasks not read for this long")
	f.Var(&cfg.Limits.UploadRate, "upload-rate", "host upload limit per second, e.g. 100MiB (0: unlimited)")
	f.Var(&cfg.Limits.DownloadRate, "download-rate", "host download limit per second (0: unlimited)")
	f.Var(&cfg.Limits.TaskDownloadRate, "task-download-rate", "per-task download limit per second (0: unlimited)")
	f.IntVar(&cfg.Limits.MaxUploads, "max-uploads", cfg.Limits.MaxUploads, "pieces uploaded at once; more requests are told to go elsewhere (0: one per 2 MiB/s of --upload-capacity, 2 to 64)")
	f.StringSliceVar(&cfg.Source.AllowedNetworks, "source-allowed-networks", cfg.Source.AllowedNetworks, "private CIDRs origins may be in (blocked by default), e.g. 10.0.0.0/8")
	f.StringSliceVar(&cfg.Source.CAFiles, "source-ca-file", cfg.Source.CAFiles, "PEM CA bundles to trust for origins, besides the system's")
	f.BoolVar(&cfg.Mirror.Enabled, "mirror", cfg.Mirror.Enabled, "serve the OCI registry mirror for containerd and Docker (see docs/mirror.md)")
	f.StringVar(&cfg.Mirror.Listen, "mirror-listen", cfg.Mirror.Listen, "the mirror's address (loopback unless mirror.allow-remote in the YAML)")
	f.StringSliceVar(&mirrorRegistries, "mirror-registry", nil, `registries the mirror serves: docker.io, NAME or NAME=http(s)://HOST[:PORT] (repeatable; the first is the default; default docker.io)`)
	clikit.DocumentEnv(f, EnvPrefix)
	return cmd
}

func newIDCommand() *cobra.Command {
	var socket, output string
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Print the running daemon's addresses (usable as another node's --bootstrap)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clikit.CheckFormat(output); err != nil {
				return err
			}
			id, err := api.NewClient(socket).ID(cmd.Context())
			if err != nil {
				return daemon.Err(err, socket)
			}
			return clikit.Print(cmd.OutOrStdout(), output, id, func(w io.Writer) error {
				if len(id.Addrs) == 0 {
					return fmt.Errorf("dfnode %s is not listening on any address", id.PeerID)
				}
				_, err := fmt.Fprintln(w, strings.Join(id.Addrs, "\n"))
				return err
			})
		},
	}
	daemon.AddSocketFlag(cmd.Flags(), &socket)
	clikit.AddOutputFlag(cmd.Flags(), &output)
	return cmd
}
