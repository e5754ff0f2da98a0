package clikit

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

func TestEnvName(t *testing.T) {
	tests := []struct {
		prefix, flag, want string
	}{
		{prefix: "DFNODE", flag: "data-dir", want: "DFNODE_DATA_DIR"},
		{prefix: "SCHEDULER", flag: "ops-addr", want: "SCHEDULER_OPS_ADDR"},
		{prefix: "MANAGER", flag: "seed", want: "MANAGER_SEED"},
		{prefix: "DFNODE", flag: "source-ca-file", want: "DFNODE_SOURCE_CA_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := EnvName(tt.prefix, tt.flag); got != tt.want {
				t.Fatalf("EnvName(%q, %q) = %q, want %q", tt.prefix, tt.flag, got, tt.want)
			}
		})
	}
}

func TestDocumentEnv(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("data-dir", "", "where data lives")
	fs.String("socket", "", "API socket (env DFNODE_SOCKET)")
	fs.Bool("help", false, "help for x")
	fs.String("bare", "", "")
	DocumentEnv(fs, "DFNODE")
	DocumentEnv(fs, "DFNODE") // idempotent
	want := map[string]string{
		"data-dir": "where data lives (env DFNODE_DATA_DIR)",
		"socket":   "API socket (env DFNODE_SOCKET)",
		"help":     "help for x",
		"bare":     "(env DFNODE_BARE)",
	}
	for name, w := range want {
		if got := fs.Lookup(name).Usage; got != w {
			t.Errorf("--%s usage = %q, want %q", name, got, w)
		}
	}
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    []string
		wantErr bool
	}{
		{name: "unset keeps default", want: []string{"d"}},
		{name: "comma separated", env: map[string]string{"X_PEERS": "a, b ,c"}, want: []string{"a", "b", "c"}},
		{name: "replaces, not appends", env: map[string]string{"X_PEERS": "a"}, want: []string{"a"}},
		{name: "empty list", env: map[string]string{"X_PEERS": ""}, want: nil},
		{name: "flag wins", args: []string{"--peers=f"}, env: map[string]string{"X_PEERS": "a"}, want: []string{"f"}},
		{name: "bad value", env: map[string]string{"X_PORT": "http"}, want: []string{"d"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var peers []string
			fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
			fs.StringSliceVar(&peers, "peers", []string{"d"}, "")
			fs.Int("port", 1, "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := ApplyEnv(fs, "X")
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			if diff := cmp.Diff(tt.want, peers); diff != "" {
				t.Fatalf("peers (-want +got):\n%s", diff)
			}
		})
	}
}
