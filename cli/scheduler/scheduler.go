// Package scheduler is the scheduler command tree: `scheduler run` starts
// the daemon, `scheduler id` prints a running scheduler's addresses (what
// nodes take as --scheduler).
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/scheduler"
)

// EnvPrefix prefixes every flag's environment twin.
const EnvPrefix = "SCHEDULER"

// NewCommand returns the scheduler command.
func NewCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "scheduler",
		Short: "The dragonfly scheduler: topology- and load-aware parent selection",
		Long: `scheduler tells every downloading dfnode which peers to fetch pieces from,
keeps origin traffic near one copy (seed peers first, a per-task budget of
peers allowed back to the origin) and learns the cluster's topology from host
announcements and measured round trips. Run several: nodes hash every task
onto the same ring of schedulers and move to the next one when the owner dies.`,
	}
	root.AddCommand(newRunCommand(), newIDCommand())
	return root
}

func newRunCommand() *cobra.Command {
	cfg := scheduler.DefaultConfig()
	var configPath, logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the scheduler",
		Long: `Run the scheduler until SIGINT or SIGTERM.

Configuration comes from defaults, then the YAML file given with --config,
then SCHEDULER_* environment variables, then flags. The cluster secret file
is the one every dfnode of the cluster uses. Give nodes the addresses that
` + "`scheduler id`" + ` prints, with --scheduler (repeat for every scheduler).`,
		Example: `  scheduler run --data-dir /var/lib/dragonfly/scheduler --cluster-secret-file /etc/dragonfly/secret
  scheduler run --config /etc/dragonfly/scheduler.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clikit.LoadConfig(cmd.Flags(), &cfg, EnvPrefix, configPath, func() { cfg = scheduler.DefaultConfig() }); err != nil {
				return clikit.UsageError(err)
			}
			log, err := clikit.NewLogger(os.Stderr, logFormat, logLevel)
			if err != nil {
				return clikit.UsageError(err)
			}
			ctx, stop := clikit.SignalContext(cmd.Context())
			defer stop()
			reg := clikit.NewRegistry()
			s, err := scheduler.New(cfg, scheduler.WithLogger(log), scheduler.WithRegisterer(reg))
			if err != nil {
				return err
			}
			runners := []clikit.Runner{s}
			if cfg.OpsAddr != "" {
				runners = append(runners, clikit.NewOpsServer(cfg.OpsAddr, clikit.WithGatherer(reg), clikit.WithOpsLogger(log),
					clikit.WithCheck("scheduler", func(context.Context) error { return s.Ready() })))
			}
			return clikit.RunAll(ctx, runners...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file (see docs/scheduler.md)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory (identity key, addrs file); created 0700")
	f.StringSliceVar(&cfg.Listen, "listen", cfg.Listen, "libp2p listen multiaddrs")
	f.StringVar(&cfg.ClusterSecretFile, "cluster-secret-file", cfg.ClusterSecretFile, "file holding the cluster secret (the nodes' one; mode 0600)")
	f.StringVar(&cfg.OpsAddr, "ops-addr", cfg.OpsAddr, "address for /metrics, /livez, /readyz (empty: off)")
	f.StringVar(&cfg.Manager.URL, "manager", cfg.Manager.URL, "manager base URL: the scheduler registers there (keepalive) and nodes following the manager put it on their ring; config cached in <data-dir>/dynconfig.json")
	f.StringVar(&cfg.Manager.TokenFile, "manager-token-file", cfg.Manager.TokenFile, "file holding a manager access token with the cluster scope (required with --manager)")
	f.StringVar(&cfg.Manager.Cluster, "manager-cluster", cfg.Manager.Cluster, "scheduler cluster this scheduler belongs to (required with --manager)")
	f.IntVar(&cfg.Scheduling.CandidateLimit, "candidate-limit", cfg.Scheduling.CandidateLimit, "parents returned per decision (≤ 16)")
	f.IntVar(&cfg.Scheduling.BackToSourceBudget, "back-to-source-budget", cfg.Scheduling.BackToSourceBudget, "peers of one task allowed to the origin (seed peers not counted)")
	f.IntVar(&cfg.Limits.MaxTasksPerHost, "max-tasks-per-host", cfg.Limits.MaxTasksPerHost, "concurrent downloads one host may register")
	clikit.DocumentEnv(f, EnvPrefix)
	return cmd
}

func newIDCommand() *cobra.Command {
	var dataDir, output string
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Print a running scheduler's addresses (usable as a node's --scheduler)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clikit.CheckFormat(output); err != nil {
				return err
			}
			raw, err := os.ReadFile(filepath.Join(dataDir, scheduler.AddrsFile))
			if errors.Is(err, fs.ErrNotExist) {
				return clikit.WithHint(fmt.Errorf("no scheduler is running with data directory %s", dataDir),
					"start one with `scheduler run --data-dir "+dataDir+"`, or pass its --data-dir")
			}
			if err != nil {
				return err
			}
			addrs := strings.Fields(string(raw))
			return clikit.Print(cmd.OutOrStdout(), output, struct {
				Addrs []string `json:"addrs"`
			}{addrs}, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, strings.Join(addrs, "\n"))
				return err
			})
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", scheduler.DefaultConfig().DataDir, "the running scheduler's data directory")
	clikit.AddOutputFlag(cmd.Flags(), &output)
	clikit.DocumentEnv(cmd.Flags(), EnvPrefix)
	return cmd
}
