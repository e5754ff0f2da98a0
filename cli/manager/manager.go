// Package manager is the `manager` command: `manager run --data-dir DIR
// --addr HOST:PORT` starts the cluster manager (REST API, console, jobs).
package manager

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/manager"
	"github.com/dragonfly-p2p/df/manager/console"
)

// EnvPrefix prefixes the environment twins of the flags.
const EnvPrefix = "MANAGER"

// NewCommand returns the manager command tree.
func NewCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "manager",
		Short: "The dragonfly manager: cluster config, scheduler registry, access control, preheat",
		Long: `manager is where an operator configures the cluster: scheduler clusters and
their scopes, users and tokens, applications, preheat jobs. Nodes and
schedulers fetch their dynamic configuration from it and keep running on their
last good copy when it is down. It needs nothing but its data directory.`,
	}
	root.AddCommand(newRunCommand())
	return root
}

// runConfig is the manager's configuration plus what only the command
// decides: whether to mount the web console.
type runConfig struct {
	manager.Config `yaml:",inline"`
	Console        bool `yaml:"console"`
}

func defaultRunConfig() runConfig { return runConfig{Config: manager.DefaultConfig(), Console: true} }

func newRunCommand() *cobra.Command {
	cfg := defaultRunConfig()
	var configPath, logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the manager",
		Long: `Run the manager until SIGINT or SIGTERM.

Configuration comes from defaults, then the YAML file given with --config,
then MANAGER_* environment variables, then flags. On first start the manager
creates the user root and prints its random password once on stderr.

The web console is served at / on --addr (sign in as root with that
password); --console=false serves the REST API alone.`,
		Example: `  manager run --data-dir /var/lib/dragonfly/manager --addr 0.0.0.0:8080
  manager run --config /etc/dragonfly/manager.yaml
  manager run --cluster-secret-file /etc/dragonfly/secret   # enables preheat, delete-task, get-task jobs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clikit.LoadConfig(cmd.Flags(), &cfg, EnvPrefix, configPath, func() { cfg = defaultRunConfig() }); err != nil {
				return clikit.UsageError(err)
			}
			log, err := clikit.NewLogger(os.Stderr, logFormat, logLevel)
			if err != nil {
				return clikit.UsageError(err)
			}
			ctx, stop := clikit.SignalContext(cmd.Context())
			defer stop()
			reg := clikit.NewRegistry()
			opts := []manager.Option{manager.WithLogger(log), manager.WithBootstrapOutput(cmd.ErrOrStderr()), manager.WithRegisterer(reg)}
			if cfg.Console {
				opts = append(opts, manager.WithConsole(console.Mount(console.WithLogger(log))))
			}
			m, err := manager.New(cfg.Config, opts...)
			if err != nil {
				return err
			}
			runners := []clikit.Runner{m}
			if cfg.OpsAddr != "" {
				runners = append(runners, clikit.NewOpsServer(cfg.OpsAddr, clikit.WithGatherer(reg), clikit.WithOpsLogger(log),
					clikit.WithCheck("manager", func(context.Context) error { return m.Ready() })))
			}
			return clikit.RunAll(ctx, runners...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file (see docs/manager.md)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory (manager.db); created 0700")
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "HTTP(S) listen address for the API and console")
	f.StringVar(&cfg.OpsAddr, "ops-addr", cfg.OpsAddr, "address for /metrics, /livez, /readyz (empty: off)")
	f.StringVar(&cfg.TLSCertFile, "tls-cert-file", cfg.TLSCertFile, "TLS certificate (PEM) for the HTTP listener")
	f.StringVar(&cfg.TLSKeyFile, "tls-key-file", cfg.TLSKeyFile, "TLS private key (PEM) for the HTTP listener")
	f.StringVar(&cfg.JWTKeyFile, "jwt-key-file", cfg.JWTKeyFile, "file holding the JWT signing key (≥ 32 bytes; empty: generated and stored)")
	f.DurationVar(&cfg.SessionTTL, "session-ttl", cfg.SessionTTL, "lifetime of a login session")
	f.DurationVar(&cfg.InstanceTTL, "instance-ttl", cfg.InstanceTTL, "a scheduler or seed peer is inactive this long after its last keepalive")
	f.IntVar(&cfg.BcryptCost, "bcrypt-cost", cfg.BcryptCost, "bcrypt cost for passwords (10..15)")
	f.BoolVar(&cfg.Console, "console", cfg.Console, "serve the web console at / on --addr (--console=false: API only)")
	f.StringSliceVar(&cfg.PreheatAllow, "preheat-allow", cfg.PreheatAllow, "CIDRs preheat may fetch from despite the SSRF rules")
	f.BoolVar(&cfg.PreheatPlainHTTP, "preheat-plain-http", cfg.PreheatPlainHTTP, "let image preheat reach registries over plain HTTP (labs and tests only)")
	f.StringVar(&cfg.ClusterSecretFile, "cluster-secret-file", cfg.ClusterSecretFile, "cluster secret (mode 0600); enables jobs: the manager joins the cluster and seed peers carry jobs out (without it POST /api/v1/jobs answers 503)")
	f.StringSliceVar(&cfg.P2PListen, "p2p-listen", cfg.P2PListen, "libp2p listen multiaddrs of the manager's cluster host")
	clikit.DocumentEnv(f, EnvPrefix)
	return cmd
}
