package clikit

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/pflag"
)

// Output formats.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// AddOutputFlag adds -o/--output text|json to fs.
func AddOutputFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVarP(p, "output", "o", FormatText, "output format: text, or json for scripts")
}

// CheckFormat validates an --output value.
func CheckFormat(f string) error {
	if f != FormatText && f != FormatJSON {
		return UsageError(fmt.Errorf("--output %q: want text or json", f))
	}
	return nil
}

// Print writes v as indented JSON when format is json, else calls text.
func Print(w io.Writer, format string, v any, text func(io.Writer) error) error {
	if format == FormatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return text(w)
}
