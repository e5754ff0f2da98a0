// Package dfcache is the dfcache command tree: put data that exists only
// on this host into the peer-to-peer cache, and get it out on any other.
package dfcache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/cli/internal/daemon"
	"github.com/dragonfly-p2p/df/cli/internal/localfile"
	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/units"
)

// NewCommand returns the dfcache command.
func NewCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "dfcache",
		Short: "Share data through the dragonfly peer-to-peer cache",
		Long: `dfcache puts data that exists only on this host (build outputs, datasets,
checkpoints) into the cluster's cache and gets it out on any other host. No
origin exists for such data: it lives on the hosts that imported or exported it.

A task is named by its ID: the sha256 of its content, printed by import.
Data imported with --id NAME [--tag TAG] can instead be named that way.

Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 dfnode unreachable.`,
	}
	root.AddCommand(newImportCommand(), newExportCommand(), newStatCommand(), newDeleteCommand(), newListCommand())
	return root
}

// common holds the flags every subcommand has.
type common struct {
	socket, output string
	name, tag      string
}

func (c *common) add(cmd *cobra.Command, naming bool) {
	daemon.AddSocketFlag(cmd.Flags(), &c.socket)
	clikit.AddOutputFlag(cmd.Flags(), &c.output)
	if naming {
		cmd.Flags().StringVar(&c.name, "id", "", "name the task (instead of its content digest)")
		cmd.Flags().StringVar(&c.tag, "tag", "", "tag of a named task")
	}
}

// taskID resolves the positional ID or --id/--tag.
func (c *common) taskID(args []string) (id string, named bool, err error) {
	switch {
	case len(args) == 1 && (c.name != "" || c.tag != ""):
		return "", false, clikit.UsageError(errors.New("give a task ID or --id/--tag, not both"))
	case len(args) == 1:
		t, err := protocol.ParseTaskID(args[0])
		if err != nil {
			return "", false, clikit.UsageError(err)
		}
		return t.String(), false, nil
	case c.name != "" || c.tag != "":
		t, err := protocol.NamedTaskID(c.name, c.tag)
		if err != nil {
			return "", false, clikit.UsageError(err)
		}
		return t.String(), true, nil
	}
	return "", false, clikit.UsageError(errors.New("a task ID (or --id NAME [--tag TAG]) is required"))
}

func newImportCommand() *cobra.Command {
	var c common
	var pieceLength uint32
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import a file into the cache and print its task ID",
		Long: `Import FILE into the local node's store and announce it to the cluster.
The task ID (the content's sha256, or derived from --id/--tag) is printed
alone on stdout. The file is read by dfcache with your permissions: symlinks,
FIFOs and devices are refused. Nothing is uploaded until someone asks.`,
		Example: `  id=$(dfcache import build/output.tar)
  dfcache import --id dataset-2026 --tag train data.parquet`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clikit.CheckFormat(c.output); err != nil {
				return err
			}
			f, size, err := localfile.OpenImport(args[0])
			if err != nil {
				return clikit.UsageError(err)
			}
			defer f.Close()
			// The open file itself goes to the daemon (its descriptor is
			// passed over the socket), so there is no byte stream to show
			// progress for: the daemon reads at disk speed.
			info, err := api.NewClient(c.socket).Import(cmd.Context(), f, size,
				api.ImportOptions{Name: c.name, Tag: c.tag, PieceLength: pieceLength})
			if err != nil {
				return daemon.Err(err, c.socket)
			}
			return clikit.Print(cmd.OutOrStdout(), c.output, info, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, info.ID)
				return err
			})
		},
	}
	c.add(cmd, true)
	cmd.Flags().Uint32Var(&pieceLength, "piece-length", 0, "fixed piece length in bytes (power of two; 0: automatic)")
	return cmd
}

func newExportCommand() *cobra.Command {
	var c common
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "export ID -O FILE",
		Short: "Get a task from the cluster into a file",
		Long: `Export a task into FILE, downloading it from the hosts that have it. Every
piece is verified; FILE appears only when the whole content is verified
(temporary file, fsync, rename, mode 0600). An existing FILE, a symlinked
directory or /proc, /sys, /dev are refused unless --force.`,
		Example: `  dfcache export 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 -O output.tar
  dfcache export --id dataset-2026 --tag train -O data.parquet`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clikit.CheckFormat(c.output); err != nil {
				return err
			}
			id, named, err := c.taskID(args)
			if err != nil {
				return err
			}
			if out == "" {
				return clikit.UsageError(errors.New("-O FILE is required (use -O - for stdout)"))
			}
			start := time.Now()
			s, err := api.NewClient(c.socket).Export(cmd.Context(), id, named)
			if err != nil {
				return daemon.Err(err, c.socket)
			}
			defer s.Close()
			var want protocol.Digest
			if !named {
				tid, _ := protocol.ParseTaskID(id)
				want = protocol.Digest(tid)
			}
			bar := clikit.NewProgress(os.Stderr, clikit.IsTerminal(os.Stderr) && c.output == clikit.FormatText && out != "-", "export", s.Size)
			n, err := daemon.Save(cmd.Context(), s, out, force, want, bar)
			bar.Done(err == nil)
			if err != nil {
				return daemon.Err(err, c.socket)
			}
			if out == "-" {
				return nil
			}
			res := map[string]any{"task_id": id, "path": out, "bytes": n, "bytes_from_peers": s.FromPeers, "seconds": time.Since(start).Seconds()}
			return clikit.Print(cmd.OutOrStdout(), c.output, res, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s: %s in %.2fs (%s from peers)\n", out, units.ByteSize(n), time.Since(start).Seconds(), units.ByteSize(s.FromPeers))
				return err
			})
		},
	}
	c.add(cmd, true)
	cmd.Flags().StringVarP(&out, "output-file", "O", "", "file to write (- for stdout)")
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE if it exists, write through symlinked directories")
	return cmd
}

func newStatCommand() *cobra.Command {
	var c common
	var local bool
	cmd := &cobra.Command{
		Use:   "stat ID",
		Short: "Describe a task: here, or wherever it is in the cluster",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clikit.CheckFormat(c.output); err != nil {
				return err
			}
			id, _, err := c.taskID(args)
			if err != nil {
				return err
			}
			st, err := api.NewClient(c.socket).Stat(cmd.Context(), id, local)
			if err != nil {
				return daemon.Err(err, c.socket)
			}
			return clikit.Print(cmd.OutOrStdout(), c.output, st, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				where := "this node"
				if !st.Local {
					where = fmt.Sprintf("%d peer(s)", st.Providers)
				}
				fmt.Fprintf(tw, "ID\t%s\n", st.Task.ID)
				fmt.Fprintf(tw, "Where\t%s\n", where)
				if st.Task.Kind != "" {
					fmt.Fprintf(tw, "Kind\t%s\n", st.Task.Kind)
				}
				fmt.Fprintf(tw, "Size\t%s (%d bytes)\n", units.ByteSize(st.Task.ContentLength), st.Task.ContentLength)
				fmt.Fprintf(tw, "Pieces\t%d of %s\n", st.Task.Pieces, units.ByteSize(st.Task.PieceLength))
				if st.Local {
					fmt.Fprintf(tw, "Verified\t%d/%d\n", st.Task.VerifiedPieces, st.Task.Pieces)
				}
				fmt.Fprintf(tw, "Complete\t%v\n", st.Task.Complete)
				if st.Task.ContentDigest != "" {
					fmt.Fprintf(tw, "Digest\t%s\n", st.Task.ContentDigest)
				}
				return tw.Flush()
			})
		},
	}
	c.add(cmd, true)
	cmd.Flags().BoolVar(&local, "local", false, "only look at this node")
	return cmd
}

func newDeleteCommand() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete this node's copy and withdraw it from the cluster",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clikit.CheckFormat(c.output); err != nil {
				return err
			}
			id, _, err := c.taskID(args)
			if err != nil {
				return err
			}
			if err := api.NewClient(c.socket).Delete(cmd.Context(), id); err != nil {
				return daemon.Err(err, c.socket)
			}
			return clikit.Print(cmd.OutOrStdout(), c.output, map[string]string{"deleted": id}, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "deleted %s\n", id)
				return err
			})
		},
	}
	c.add(cmd, true)
	return cmd
}

func newListCommand() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tasks this node holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clikit.CheckFormat(c.output); err != nil {
				return err
			}
			tasks, err := api.NewClient(c.socket).List(cmd.Context())
			if err != nil {
				return daemon.Err(err, c.socket)
			}
			return clikit.Print(cmd.OutOrStdout(), c.output, tasks, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tKIND\tSIZE\tPIECES\tCOMPLETE")
				for _, t := range tasks {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%v\n", t.ID, t.Kind, units.ByteSize(t.ContentLength), t.VerifiedPieces, t.Pieces, t.Complete)
				}
				return tw.Flush()
			})
		},
	}
	c.add(cmd, false)
	return cmd
}
