package clikit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("configuration error")

// EnvName is the environment twin of a flag: PREFIX_FLAG_NAME.
func EnvName(prefix, flag string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// DocumentEnv appends "(env PREFIX_NAME)" to every flag's usage, so --help
// shows the twins. Call it after defining the flags.
func DocumentEnv(fs *pflag.FlagSet, prefix string) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || strings.Contains(f.Usage, "(env ") {
			return
		}
		f.Usage += " (env " + EnvName(prefix, f.Name) + ")"
	})
}

// LoadConfig layers the configuration of a daemon whose flags are bound to
// fields of cfg (a pointer to a struct with yaml tags): reset() restores
// the defaults, then the YAML file at path (if any) is decoded strictly
// (unknown fields are errors), then environment twins apply to flags the
// user did not set, then the flags the user did set are applied again. If
// cfg has a Validate() error method, it runs last.
func LoadConfig(fs *pflag.FlagSet, cfg any, envPrefix, path string, reset func()) error {
	// Remember what the user set on the command line.
	type setFlag struct {
		f    *pflag.Flag
		vals []string
	}
	var changed []setFlag
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Changed {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			changed = append(changed, setFlag{f, sv.GetSlice()})
		} else {
			changed = append(changed, setFlag{f, []string{f.Value.String()}})
		}
	})
	reset()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, errEOF) {
			return fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
		}
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || f.Name == "help" {
			return
		}
		v, ok := os.LookupEnv(EnvName(envPrefix, f.Name))
		if !ok {
			return
		}
		if err := setValue(f, splitEnv(f, v)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvName(envPrefix, f.Name), err))
		}
	})
	for _, c := range changed {
		if err := setValue(c.f, c.vals); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", c.f.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if v, ok := cfg.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	return nil
}

// errEOF is what the YAML decoder returns for an empty document: an empty
// file is a valid (empty) configuration.
var errEOF = io.EOF

// setValue sets a flag's value without marking it changed twice; slices
// are replaced, not appended to.
func setValue(f *pflag.Flag, vals []string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.Replace(vals)
	}
	if len(vals) == 0 {
		return nil
	}
	return f.Value.Set(vals[0])
}

// splitEnv splits a slice flag's environment value on commas.
func splitEnv(f *pflag.Flag, v string) []string {
	if _, ok := f.Value.(pflag.SliceValue); !ok {
		return []string{v}
	}
	if strings.TrimSpace(v) == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
