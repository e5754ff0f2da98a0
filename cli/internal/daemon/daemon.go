// Package daemon is what the dfget, dfcache and dfnode CLIs share to talk
// to the local dfnode: the --socket flag, turning API errors into exit codes
// with hints, and saving a verified stream to a file.
package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/cli/internal/localfile"
	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/protocol"
)

// DefaultSocket is where dfnode listens with its default data directory.
const DefaultSocket = "/var/lib/dragonfly/dfnode/dfnode.sock"

// AddSocketFlag adds --socket (env DFNODE_SOCKET).
func AddSocketFlag(fs *pflag.FlagSet, p *string) {
	def := DefaultSocket
	if v := os.Getenv("DFNODE_SOCKET"); v != "" {
		def = v
	}
	fs.StringVar(p, "socket", def, "dfnode API socket (env DFNODE_SOCKET)")
}

// Err maps an API error to an exit code and a hint.
func Err(err error, socket string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, api.ErrUnavailable):
		return clikit.WithHint(clikit.WithCode(clikit.ExitUnavailable, err),
			fmt.Sprintf("is dfnode running? start it with `dfnode run`, or point --socket (now %s) at its socket", socket))
	case errors.Is(err, api.ErrNotFound):
		return clikit.WithCode(clikit.ExitNotFound, err)
	case errors.Is(err, api.ErrBadRequest), errors.Is(err, protocol.ErrBadTaskID), errors.Is(err, protocol.ErrBadDigest):
		return clikit.UsageError(err)
	}
	return err
}

// Save writes a stream to path (safely: temp file, fsync, rename, 0600, no
// overwrite unless force) and returns the bytes written. The file appears
// only if the daemon vouched for every byte; want, when non-zero, is checked
// against the bytes actually written as well.
func Save(ctx context.Context, s *api.Stream, path string, force bool, want protocol.Digest, progress *clikit.Progress) (int64, error) {
	if path == "-" {
		n, err := io.Copy(os.Stdout, progress.Reader(s))
		return n, err
	}
	out, err := localfile.CreateExport(path, force)
	if err != nil {
		return 0, clikit.UsageError(err)
	}
	var h hash.Hash
	var w io.Writer = out
	if !want.IsZero() {
		h = sha256.New()
		w = io.MultiWriter(out, h)
	}
	n, err := io.Copy(w, progress.Reader(s))
	if err == nil && h != nil {
		var got protocol.Digest
		h.Sum(got[:0])
		if got != want {
			err = fmt.Errorf("written bytes hash to %s, want %s", got, want)
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		out.Abort()
		return n, err
	}
	return n, out.Commit()
}
