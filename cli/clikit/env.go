package clikit

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// EnvName returns the environment twin of a flag: the prefix, an
// underscore, and the flag name in upper case with dashes as underscores
// (EnvName("DFNODE", "data-dir") is "DFNODE_DATA_DIR").
func EnvName(prefix, flag string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// noTwin reports flags that have no environment twin: cobra's own --help
// and --version act while parsing, before any twin could be applied (and
// FOO_VERSION is too common a variable name to claim).
func noTwin(name string) bool { return name == "help" || name == "version" }

// DocumentEnv appends " (env PREFIX_FLAG_NAME)" to the usage of every flag
// of fs, so that --help shows each twin. Call it after defining the flags.
// A usage that already names a variable ("(env …)") is left alone, so
// calling it twice does not repeat the suffix.
func DocumentEnv(fs *pflag.FlagSet, prefix string) {
	fs.VisitAll(func(f *pflag.Flag) {
		if noTwin(f.Name) {
			return
		}
		if strings.Contains(f.Usage, "(env ") {
			return
		}
		suffix := "(env " + EnvName(prefix, f.Name) + ")"
		if f.Usage != "" {
			suffix = " " + suffix
		}
		f.Usage += suffix
	})
}

// ApplyEnv sets every flag of fs that was not given on the command line
// from its environment twin, if that variable is set (even to the empty
// string). List flags (pflag.SliceValue) take a comma-separated value and
// are replaced, not appended to; an empty value empties them. Flags set
// this way are not marked Changed: Changed keeps meaning "given on the
// command line".
//
// Every malformed variable is reported, each under its name, in one error
// wrapping [ErrConfig]. Values are never echoed by ApplyEnv itself, since
// a twin may hold a secret.
func ApplyEnv(fs *pflag.FlagSet, prefix string) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || noTwin(f.Name) {
			return
		}
		name := EnvName(prefix, f.Name)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if err := setFlag(f, envValues(f, v)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// setFlag gives f the values vals: a list flag is replaced by all of
// them, any other flag is Set to the single value.
func setFlag(f *pflag.Flag, vals []string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.Replace(vals)
	}
	if len(vals) != 1 {
		return fmt.Errorf("flag --%s takes one value, got %d", f.Name, len(vals))
	}
	return f.Value.Set(vals[0])
}

// envValues splits a list flag's variable on commas (trimming spaces; an
// empty or blank value is the empty list). Other flags take it whole.
func envValues(f *pflag.Flag, v string) []string {
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
