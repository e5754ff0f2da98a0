// Package dfget is the dfget command: download a URL through the
// peer-to-peer network.
package dfget

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/cli/internal/daemon"
	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/units"
)

// Result is what dfget prints with --output json.
type Result struct {
	TaskID          string  `json:"task_id"`
	Path            string  `json:"path"`
	Bytes           int64   `json:"bytes"`
	BytesFromPeers  int64   `json:"bytes_from_peers"`
	BytesFromSource int64   `json:"bytes_from_source"`
	Seconds         float64 `json:"seconds"`
}

// NewCommand returns the dfget command.
func NewCommand() *cobra.Command {
	var (
		socket, out, output, digest string
		req                         api.DownloadRequest
		headers                     []string
		rate                        units.ByteSize
		force                       bool
	)
	cmd := &cobra.Command{
		Use:   "dfget URL -O FILE",
		Short: "Download a URL through the dragonfly peer-to-peer network",
		Long: `dfget asks the local dfnode to download URL. The node fetches the pieces
from other hosts that have them and goes to the origin only for the rest;
every piece is verified before it is written. FILE appears only once the
whole download is verified (written to a temporary file, fsynced, renamed;
mode 0600). An existing FILE is kept unless --force is given.

With --digest the download is verified against that sha256 and shared with
every other download of the same bytes, whatever their URL.

Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 dfnode unreachable.`,
		Example: `  dfget https://example.com/model.bin -O model.bin
  dfget https://example.com/app.tar.gz -O app.tar.gz --digest sha256:9f86d0...
  dfget "https://bucket.s3.amazonaws.com/x?X-Amz-Signature=..." -O x --filter X-Amz-Signature,X-Amz-Date`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clikit.CheckFormat(output); err != nil {
				return err
			}
			if out == "" {
				return clikit.UsageError(errors.New("-O FILE is required (use -O - for stdout)"))
			}
			req.URL = args[0]
			req.Digest = digest
			req.RateLimit = int64(rate)
			var want protocol.Digest
			if digest != "" {
				d, err := protocol.ParseDigest(digest)
				if err != nil {
					return clikit.UsageError(err)
				}
				want = d
			}
			if req.Priority < 0 || req.Priority > 6 {
				return clikit.UsageError(fmt.Errorf("--priority %d: want 0 (unset) to 6", req.Priority))
			}
			h, err := parseHeaders(headers)
			if err != nil {
				return clikit.UsageError(err)
			}
			req.Header = h
			start := time.Now()
			client := api.NewClient(socket)
			s, err := client.Download(cmd.Context(), req)
			if err != nil {
				return daemon.Err(err, socket)
			}
			defer s.Close()
			bar := clikit.NewProgress(os.Stderr, clikit.IsTerminal(os.Stderr) && output == clikit.FormatText && out != "-", "dfget", s.Size)
			n, err := daemon.Save(cmd.Context(), s, out, force, want, bar)
			bar.Done(err == nil)
			if err != nil {
				return daemon.Err(err, socket)
			}
			res := Result{TaskID: s.TaskID, Path: out, Bytes: n, BytesFromPeers: s.FromPeers, BytesFromSource: s.FromSource, Seconds: time.Since(start).Seconds()}
			if out == "-" {
				return nil
			}
			return clikit.Print(cmd.OutOrStdout(), output, res, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s: %s in %.2fs (%s from peers, %s from the origin)\n",
					out, units.ByteSize(n), res.Seconds, units.ByteSize(res.BytesFromPeers), units.ByteSize(res.BytesFromSource))
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output-file", "O", "", "file to write (- for stdout)")
	f.BoolVar(&force, "force", false, "replace FILE if it exists")
	f.StringVar(&digest, "digest", "", "expected sha256 of the content, as sha256:<hex>")
	f.StringVar(&req.Tag, "tag", "", "tag separating otherwise identical URLs")
	f.StringVar(&req.Application, "application", "", "application name (scheduler rules)")
	f.IntVar(&req.Priority, "priority", 0, "priority LEVEL0-6 (0: unset; the scheduler uses it)")
	f.StringArrayVarP(&headers, "header", "H", nil, `header sent to the origin only, "Name: value" (repeatable)`)
	f.StringSliceVar(&req.FilteredQueryParams, "filter", nil, "query parameters left out of the task identity (signatures, expiry)")
	f.Uint32Var(&req.PieceLength, "piece-length", 0, "fixed piece length in bytes (power of two; 0: automatic)")
	f.Var(&rate, "rate-limit", "download limit per second for this task, e.g. 50MiB (0: node default)")
	f.BoolVar(&req.NoBackSource, "no-back-source", false, "only download from peers, never from the origin")
	daemon.AddSocketFlag(f, &socket)
	clikit.AddOutputFlag(f, &output)
	return cmd
}

// parseHeaders turns "Name: value" strings into a header map.
func parseHeaders(hs []string) (map[string][]string, error) {
	if len(hs) == 0 {
		return nil, nil
	}
	h := http.Header{}
	for _, s := range hs {
		name, value, ok := strings.Cut(s, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
			return nil, fmt.Errorf("--header %q…: want \"Name: value\"", truncate(name))
		}
		h.Add(name, strings.TrimSpace(value))
	}
	return h, nil
}

// truncate keeps an error message short (never echo header values: they
// may be credentials).
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}
