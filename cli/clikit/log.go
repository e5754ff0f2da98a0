package clikit

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// secretKeys are attribute keys (lower case, substring match) whose values
// are never written.
var secretKeys = []string{"authorization", "password", "passwd", "token", "secret", "cookie", "credential"}

// NewLogger returns a logger writing format ("json" or "text") at level
// ("debug", "info", "warn", "error") to w. Attributes whose key looks like a
// secret are replaced by "[redacted]".
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: redact}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want json or text", format)
}

func redact(_ []string, a slog.Attr) slog.Attr {
	k := strings.ToLower(a.Key)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return slog.String(a.Key, "[redacted]")
		}
	}
	return a
}
