package clikit

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"
)

// NewLogger returns a logger writing format (FormatJSON, or FormatText;
// empty means text) at level ("debug", "info", "warn" or "error", any case,
// optionally with an offset such as "info+2"; empty means info) to w.
// Daemons log JSON, CLIs text. Secrets are masked: see [RedactSecrets].
//
// The logger is returned, not installed with slog.SetDefault: callers
// inject it into what they construct.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	lv := slog.LevelInfo
	if level != "" {
		if err := lv.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
		}
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: RedactSecrets}
	switch strings.ToLower(format) {
	case FormatJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case FormatText, "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want json or text", format)
}

// AddLogFlags adds --log-format (default defaultFormat: FormatJSON for
// daemons, FormatText for CLIs) and --log-level (default info) to fs,
// bound to format and level; pass them to [NewLogger].
func AddLogFlags(fs *pflag.FlagSet, format, level *string, defaultFormat string) {
	fs.StringVar(format, "log-format", defaultFormat, "log format: json or text")
	fs.StringVar(level, "log-level", "info", "log level: debug, info, warn or error")
}
