package clikit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"
)

// Output (and log) formats.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// AddOutputFlag adds -o/--output text|json to fs, bound to p (default
// text). Other values are refused while parsing, so they surface as usage
// errors (exit code 2).
func AddOutputFlag(fs *pflag.FlagSet, p *string) {
	*p = FormatText
	fs.VarP((*formatValue)(p), "output", "o", "output format: text, or json for scripts")
}

// formatValue is a pflag.Value accepting only text or json.
type formatValue string

func (f *formatValue) String() string { return string(*f) }
func (f *formatValue) Type() string   { return "text|json" }
func (f *formatValue) Set(s string) error {
	if s != FormatText && s != FormatJSON {
		return errors.New("want text or json")
	}
	*f = formatValue(s)
	return nil
}

// CheckFormat returns a usage error unless f is FormatText or FormatJSON.
func CheckFormat(f string) error {
	if f != FormatText && f != FormatJSON {
		return UsageError(fmt.Errorf("output format %q: want text or json", f))
	}
	return nil
}

// Print writes a command's result to w. With FormatJSON it writes v as one
// indented JSON document followed by a newline (HTML characters are not
// escaped: URLs stay readable); with FormatText it calls text(w), or
// prints v with fmt.Fprintln when text is nil. Any other format is a usage
// error.
func Print(w io.Writer, format string, v any, text func(io.Writer) error) error {
	switch format {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("print json: %w", err)
		}
		return nil
	case FormatText:
		if text == nil {
			_, err := fmt.Fprintln(w, v)
			return err
		}
		return text(w)
	}
	return CheckFormat(format)
}
