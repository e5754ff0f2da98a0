package clikit

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

type testLimits struct {
	Max int `yaml:"max"`
}

type testConfig struct {
	Name    string        `yaml:"name"`
	Count   int           `yaml:"count"`
	Verbose bool          `yaml:"verbose"`
	Wait    time.Duration `yaml:"wait"`
	Peers   []string      `yaml:"peers"`
	Limits  testLimits    `yaml:"limits"`
}

func (c *testConfig) Validate() error {
	if c.Count < 0 {
		return errors.New("count must not be negative")
	}
	return nil
}

func testDefaults() testConfig {
	return testConfig{Name: "default", Count: 1, Wait: time.Second, Peers: []string{"d"}, Limits: testLimits{Max: 2}}
}

// fromFile is testdata/good.yaml.
func fromFile() testConfig {
	return testConfig{Name: "from-file", Count: 7, Verbose: true, Wait: 3 * time.Second, Peers: []string{"a", "b"}, Limits: testLimits{Max: 5}}
}

// testFlags binds flags to cfg the way the daemons do.
func testFlags(cfg *testConfig, configPath *string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	AddConfigFlag(fs, configPath)
	fs.StringVar(&cfg.Name, "name", cfg.Name, "name")
	fs.IntVar(&cfg.Count, "count", cfg.Count, "count")
	fs.BoolVar(&cfg.Verbose, "verbose", cfg.Verbose, "verbose")
	fs.DurationVar(&cfg.Wait, "wait", cfg.Wait, "wait")
	fs.StringSliceVar(&cfg.Peers, "peers", cfg.Peers, "peers")
	fs.IntVar(&cfg.Limits.Max, "max", cfg.Limits.Max, "max")
	return fs
}

// load parses args, sets env and loads the configuration.
func load(t *testing.T, args []string, env map[string]string) (testConfig, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg := testDefaults()
	var configPath string
	fs := testFlags(&cfg, &configPath)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	err := LoadConfig(fs, &cfg, "TEST", configPath, func() { cfg = testDefaults() })
	return cfg, err
}

func TestLoadConfigPrecedence(t *testing.T) {
	good := "--config=testdata/good.yaml"
	allEnv := map[string]string{"TEST_NAME": "from-env", "TEST_COUNT": "9", "TEST_VERBOSE": "false",
		"TEST_WAIT": "5m", "TEST_PEERS": "x, y,z", "TEST_MAX": "8"}
	fromEnv := testConfig{Name: "from-env", Count: 9, Verbose: false, Wait: 5 * time.Minute, Peers: []string{"x", "y", "z"}, Limits: testLimits{Max: 8}}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want testConfig
	}{
		{name: "defaults", want: testDefaults()},
		{name: "file beats defaults", args: []string{good}, want: fromFile()},
		{name: "empty file keeps defaults", args: []string{"--config=testdata/empty.yaml"}, want: testDefaults()},
		{name: "env beats defaults", env: allEnv, want: fromEnv},
		{name: "env beats file", args: []string{good}, env: allEnv, want: fromEnv},
		{name: "flags beat env and file", args: []string{good, "--name=flag", "--count=2", "--verbose=false",
			"--wait=1ms", "--peers=p", "--peers=q", "--max=0"}, env: allEnv,
			want: testConfig{Name: "flag", Count: 2, Verbose: false, Wait: time.Millisecond, Peers: []string{"p", "q"}, Limits: testLimits{Max: 0}}},
		{name: "flag equal to the default still beats file", args: []string{good, "--name=default", "--verbose=false"},
			want: func() testConfig { c := fromFile(); c.Name, c.Verbose = "default", false; return c }()},
		{name: "layers mix per field", args: []string{good, "--count=3"}, env: map[string]string{"TEST_WAIT": "1h"},
			want: func() testConfig { c := fromFile(); c.Count, c.Wait = 3, time.Hour; return c }()},
		{name: "empty env empties a list", env: map[string]string{"TEST_PEERS": " "},
			want: func() testConfig { c := testDefaults(); c.Peers = nil; return c }()},
		{name: "empty env empties a string", args: []string{good}, env: map[string]string{"TEST_NAME": ""},
			want: func() testConfig { c := fromFile(); c.Name = ""; return c }()},
		{name: "config twin names the file", env: map[string]string{"TEST_CONFIG": "testdata/good.yaml"}, want: fromFile()},
		{name: "config flag beats its twin", args: []string{"--config=testdata/empty.yaml"},
			env: map[string]string{"TEST_CONFIG": "testdata/good.yaml"}, want: testDefaults()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// The fixtures in testdata/*.bad.yaml, each with the message it must
// produce: the file and the line of the problem.
func TestLoadConfigBadFiles(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{file: "unknown-field.bad.yaml", want: []string{"unknown-field.bad.yaml: line 2: field colour not found"}},
		{file: "unknown-nested-field.bad.yaml", want: []string{"line 3: field min not found"}},
		{file: "wrong-type.bad.yaml", want: []string{"wrong-type.bad.yaml: line 2: cannot unmarshal !!str `seven` into int"}},
		{file: "bad-duration.bad.yaml", want: []string{"line 1: cannot unmarshal !!str `soon` into time.Duration"}},
		{file: "scalar-for-list.bad.yaml", want: []string{"line 1: cannot unmarshal !!str `a` into []string"}},
		{file: "syntax.bad.yaml", want: []string{"syntax.bad.yaml: line 1"}},
		{file: "two-documents.bad.yaml", want: []string{"line 2: a second YAML document"}},
		{file: "invalid.bad.yaml", want: []string{"count must not be negative"}},
		{file: "missing.yaml", want: []string{"missing.yaml", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := load(t, []string{"--config=" + filepath.Join("testdata", tt.file)}, nil)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "unmarshal errors") {
				t.Errorf("error %q keeps the decoder's preamble", err)
			}
		})
	}
}

func TestLoadConfigBadEnvAndFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{name: "int", env: map[string]string{"TEST_COUNT": "many"}, want: []string{"TEST_COUNT"}},
		{name: "bool", env: map[string]string{"TEST_VERBOSE": "yes please"}, want: []string{"TEST_VERBOSE"}},
		{name: "duration", env: map[string]string{"TEST_WAIT": "soon"}, want: []string{"TEST_WAIT"}},
		{name: "every bad variable reported", env: map[string]string{"TEST_COUNT": "x", "TEST_MAX": "y"},
			want: []string{"TEST_COUNT", "TEST_MAX"}},
		{name: "bad env ignored when the flag is given", args: []string{"--count=4", "--count=-1"},
			env: map[string]string{"TEST_COUNT": "many"}, want: []string{"count must not be negative"}},
		{name: "validate sees the flags", args: []string{"--count=-1"}, want: []string{"count must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.args, tt.env)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A second load (a reload) yields the same configuration: the command
// line's values are not lost, nor lists appended to.
func TestLoadConfigTwice(t *testing.T) {
	t.Setenv("TEST_WAIT", "2m")
	cfg := testDefaults()
	var configPath string
	fs := testFlags(&cfg, &configPath)
	if err := fs.Parse([]string{"--config=testdata/good.yaml", "--peers=p,q", "--count=4"}); err != nil {
		t.Fatal(err)
	}
	var got []testConfig
	for range 2 {
		if err := LoadConfig(fs, &cfg, "TEST", configPath, func() { cfg = testDefaults() }); err != nil {
			t.Fatal(err)
		}
		got = append(got, cfg)
	}
	want := fromFile()
	want.Peers, want.Count, want.Wait = []string{"p", "q"}, 4, 2*time.Minute
	for i, g := range got {
		if diff := cmp.Diff(want, g); diff != "" {
			t.Fatalf("load %d (-want +got):\n%s", i+1, diff)
		}
	}
}

// Flags that do not belong to the config struct (--log-level) still get
// their twin.
func TestLoadConfigUnboundFlag(t *testing.T) {
	t.Setenv("TEST_LOG_LEVEL", "debug")
	cfg := testDefaults()
	var configPath, level string
	fs := testFlags(&cfg, &configPath)
	fs.StringVar(&level, "log-level", "info", "")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := LoadConfig(fs, &cfg, "TEST", configPath, nil); err != nil {
		t.Fatal(err)
	}
	if level != "debug" {
		t.Fatalf("log-level = %q, want the twin's debug", level)
	}
	if fs.Changed("log-level") {
		t.Fatal("a twin marked the flag as given on the command line")
	}
}

// A flag type whose value does not survive String/Set (pflag's maps
// merge) is refused rather than silently mangled.
func TestLoadConfigRefusesFlagsThatDoNotRoundTrip(t *testing.T) {
	var labels map[string]string
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.StringToStringVar(&labels, "labels", nil, "")
	if err := fs.Parse([]string{"--labels=a=1"}); err != nil {
		t.Fatal(err)
	}
	err := LoadConfig(fs, &struct{}{}, "TEST", "", nil)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--labels") {
		t.Fatalf("err = %v, want ErrConfig naming --labels", err)
	}
}

func TestLoadConfigNeedsPointer(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	for _, cfg := range []any{nil, testConfig{}, (*testConfig)(nil)} {
		if err := LoadConfig(fs, cfg, "TEST", "", nil); !errors.Is(err, ErrConfig) {
			t.Errorf("LoadConfig(%T) = %v, want ErrConfig", cfg, err)
		}
	}
}

// kib is a flag value whose String is lossy, like a byte size printed in
// the largest unit.
type kib int64

func (k *kib) String() string { return strconv.FormatInt(int64(*k)/1024, 10) + "KiB" }
func (k *kib) Type() string   { return "size" }
func (k *kib) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSuffix(s, "KiB"), 10, 64)
	if strings.HasSuffix(s, "KiB") {
		n *= 1024
	}
	*k = kib(n)
	return err
}

// A given flag keeps its exact value, even when its String would lose
// precision.
func TestLoadConfigRestoresExactValues(t *testing.T) {
	cfg := struct {
		Rate kib `yaml:"rate"`
	}{Rate: 1024}
	fs := newFlagSet()
	fs.Var(&cfg.Rate, "rate", "")
	if err := fs.Parse([]string{"--rate=1500"}); err != nil {
		t.Fatal(err)
	}
	if err := LoadConfig(fs, &cfg, "TEST", "", nil); err != nil {
		t.Fatal(err)
	}
	if cfg.Rate != 1500 {
		t.Fatalf("rate = %d, want the given 1500", cfg.Rate)
	}
}
