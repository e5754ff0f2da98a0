package clikit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// ErrConfig is wrapped by every error about configuration: the file, an
// environment twin, a flag value that cannot be re-applied, or Validate.
var ErrConfig = errors.New("configuration error")

// ConfigFlag is the name of the flag naming the YAML configuration file.
// Its twin (e.g. DFNODE_CONFIG) chooses the file when the flag is absent.
const ConfigFlag = "config"

// AddConfigFlag adds --config FILE to fs, bound to p.
func AddConfigFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, ConfigFlag, "", "YAML configuration file (unknown keys are errors)")
}

// LoadConfig layers a daemon's configuration into cfg, a pointer to a
// struct with yaml tags whose fields the flags of fs are bound to (with
// pflag's XxxVar). Each layer overrides the one before:
//
//  1. defaults: reset restores them (pass nil if cfg has not been touched
//     since the flags were defined, so it still holds them);
//  2. the YAML file at path, decoded strictly: an unknown key, a value of
//     the wrong type, a malformed duration or a second document is an error
//     naming the file and line. An empty path skips the file; so does an
//     empty file. If fs has a --config flag that was not given, its twin
//     (PREFIX_CONFIG) names the file instead of path;
//  3. environment twins (see [ApplyEnv]) of the flags not given;
//  4. the flags given on the command line, applied again with the values
//     the user typed (list flags replaced, not appended to).
//
// Finally, if cfg has a Validate() error method, it is called. Every error
// wraps [ErrConfig]; callers usually return it as a [UsageError].
//
// Step 4 restores each given flag exactly: it copies the storage of values
// without references (every scalar flag, and custom values such as byte
// sizes, however lossy their String), replaces lists with what GetSlice
// returned, and sets anything else again from its String, failing loudly
// when that does not round-trip (pflag's map flags).
//
// With a reset, LoadConfig may be called again (on reload) and the result
// depends only on defaults, file, environment and command line. After an
// error cfg may be partly loaded.
func LoadConfig(fs *pflag.FlagSet, cfg any, envPrefix, path string, reset func()) error {
	if v := reflect.ValueOf(cfg); v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("%w: clikit.LoadConfig needs a non-nil pointer, got %T", ErrConfig, cfg)
	}
	if f := fs.Lookup(ConfigFlag); f != nil && !f.Changed {
		if v, ok := os.LookupEnv(EnvName(envPrefix, ConfigFlag)); ok {
			path = v
		}
	}
	given := snapshot(fs)
	if reset != nil {
		reset()
	}
	if path != "" {
		if err := decodeFile(path, cfg); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if err := ApplyEnv(fs, envPrefix); err != nil {
		return err
	}
	if err := given.restore(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if v, ok := cfg.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	return nil
}

// givenFlag is a flag the user gave, with the value it ended up holding:
// mem, an exact copy of the value's storage when that holds no references
// (strings, numbers, bools, durations, sizes: almost every flag), else
// vals, its value(s) as strings (lists, maps, IPs).
type givenFlag struct {
	flag *pflag.Flag
	mem  reflect.Value
	vals []string
}

type givenFlags []givenFlag

// snapshot records the flags given on the command line.
func snapshot(fs *pflag.FlagSet) givenFlags {
	var given givenFlags
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Changed {
			return
		}
		if _, list := f.Value.(pflag.SliceValue); !list {
			if v := reflect.ValueOf(f.Value); v.Kind() == reflect.Pointer && !v.IsNil() && plainData(v.Type().Elem()) {
				mem := reflect.New(v.Type().Elem()).Elem()
				mem.Set(v.Elem())
				given = append(given, givenFlag{flag: f, mem: mem})
				return
			}
		}
		given = append(given, givenFlag{flag: f, vals: values(f)})
	})
	return given
}

// plainData reports whether values of t hold no references, so that
// copying one copies all of it.
func plainData(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return plainData(t.Elem())
	case reflect.Struct:
		for f := range t.Fields() {
			if !plainData(f.Type) {
				return false
			}
		}
		return true
	}
	return false
}

// values reads a flag's current value(s) as strings.
func values(f *pflag.Flag) []string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return slices.Clone(sv.GetSlice())
	}
	return []string{f.Value.String()}
}

// restore gives every given flag its value again. Values restored through
// their strings are checked to have survived.
func (g givenFlags) restore() error {
	var errs []error
	for _, gf := range g {
		if gf.mem.IsValid() {
			reflect.ValueOf(gf.flag.Value).Elem().Set(gf.mem)
			continue
		}
		if err := setFlag(gf.flag, gf.vals); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", gf.flag.Name, err))
			continue
		}
		if got := values(gf.flag); !slices.Equal(got, gf.vals) {
			errs = append(errs, fmt.Errorf("--%s: flag type %s does not survive re-application (%q became %q); LoadConfig cannot layer it",
				gf.flag.Name, gf.flag.Value.Type(), gf.vals, got))
		}
	}
	return errors.Join(errs...)
}

// decodeFile strictly decodes the single YAML document at path into cfg.
func decodeFile(path string, cfg any) error {
	f, err := os.Open(path)
	if err != nil {
		return err // *PathError already names the file
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) { // empty, or comments only
			return nil
		}
		return &fileError{path: path, err: err}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err == nil {
			err = fmt.Errorf("line %d: a second YAML document; the configuration is one document", extra.Line)
		}
		return &fileError{path: path, err: err}
	}
	return nil
}

// fileError is a problem inside a configuration file. Its message is one
// line per problem, each "path: line N: what", without the decoder's
// "yaml: unmarshal errors:" preamble.
type fileError struct {
	path string
	err  error
}

func (e *fileError) Error() string {
	var te *yaml.TypeError
	if errors.As(e.err, &te) {
		lines := make([]string, len(te.Errors))
		for i, msg := range te.Errors {
			lines[i] = e.path + ": " + msg
		}
		return strings.Join(lines, "\n")
	}
	return e.path + ": " + strings.TrimPrefix(e.err.Error(), "yaml: ")
}

func (e *fileError) Unwrap() error { return e.err }
