package clikit

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

type testConfig struct {
	Name    string        `yaml:"name"`
	Count   int           `yaml:"count"`
	Verbose bool          `yaml:"verbose"`
	Wait    time.Duration `yaml:"wait"`
	Peers   []string      `yaml:"peers"`
}

func (c *testConfig) Validate() error {
	if c.Count < 0 {
		return errors.New("count must not be negative")
	}
	return nil
}

func defaults() testConfig {
	return testConfig{Name: "default", Count: 1, Wait: time.Second, Peers: []string{"d"}}
}

func load(t *testing.T, args []string, env map[string]string, file string) (testConfig, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg := defaults()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.StringVar(&cfg.Name, "name", cfg.Name, "name")
	fs.IntVar(&cfg.Count, "count", cfg.Count, "count")
	fs.BoolVar(&cfg.Verbose, "verbose", cfg.Verbose, "verbose")
	fs.DurationVar(&cfg.Wait, "wait", cfg.Wait, "wait")
	fs.StringSliceVar(&cfg.Peers, "peers", cfg.Peers, "peers")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	err := LoadConfig(fs, &cfg, "TEST", file, func() { cfg = defaults() })
	return cfg, err
}

func TestLoadConfigPrecedence(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want testConfig
	}{
		{name: "defaults", want: defaults()},
		{name: "file", file: "testdata/good.yaml",
			want: testConfig{Name: "from-file", Count: 7, Verbose: true, Wait: 3 * time.Second, Peers: []string{"a", "b"}}},
		{name: "empty file", file: "testdata/empty.yaml", want: defaults()},
		{name: "env beats file", file: "testdata/good.yaml",
			env:  map[string]string{"TEST_NAME": "from-env", "TEST_COUNT": "9", "TEST_VERBOSE": "false", "TEST_WAIT": "5m", "TEST_PEERS": "x, y,z"},
			want: testConfig{Name: "from-env", Count: 9, Verbose: false, Wait: 5 * time.Minute, Peers: []string{"x", "y", "z"}}},
		{name: "flag beats env and file", file: "testdata/good.yaml",
			args: []string{"--name=flag", "--count=2", "--verbose=false", "--wait=1ms", "--peers=p", "--peers=q"},
			env:  map[string]string{"TEST_NAME": "from-env", "TEST_COUNT": "9", "TEST_PEERS": "x"},
			want: testConfig{Name: "flag", Count: 2, Verbose: false, Wait: time.Millisecond, Peers: []string{"p", "q"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(t, tt.args, tt.env, tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
	}{
		{name: "unknown field", file: "testdata/unknown-field.yaml"},
		{name: "wrong type", file: "testdata/wrong-type.yaml"},
		{name: "bad duration", file: "testdata/bad-duration.yaml"},
		{name: "missing file", file: "testdata/nope.yaml"},
		{name: "bad env value", env: map[string]string{"TEST_COUNT": "many"}},
		{name: "validate fails", args: []string{"--count=-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := load(t, tt.args, tt.env, tt.file); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestDocumentEnv(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("data-dir", "", "where data lives")
	DocumentEnv(fs, "DFNODE")
	if got := fs.Lookup("data-dir").Usage; got != "where data lives (env DFNODE_DATA_DIR)" {
		t.Fatalf("usage = %q", got)
	}
}
