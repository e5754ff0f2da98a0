package dftestnet

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dragonfly-p2p/df/cli/clikit"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestSimCommand(t *testing.T) {
	out, err := run(t, "sim", "--peers", "8", "--size", "8MiB", "--piece-length", "1MiB", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Peers       int     `json:"peers"`
		Pieces      int     `json:"pieces"`
		OriginRatio float64 `json:"origin_ratio"`
		Last        float64 `json:"last_s"`
		Bound       float64 `json:"bound_s"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if rep.Peers != 8 || rep.Pieces != 8 || rep.OriginRatio < 1 || rep.Last < rep.Bound {
		t.Fatalf("report %+v", rep)
	}
	text, err := run(t, "sim", "--peers", "4", "--size", "4MiB")
	if err != nil || !strings.Contains(text, "origin bytes") || !strings.Contains(text, "per decision") {
		t.Fatalf("text report: %v\n%s", err, text)
	}
	for name, tt := range map[string]struct {
		args  []string
		usage bool // exit status 2
	}{
		"no peers":        {[]string{"sim", "--peers", "0"}, true},
		"huge pieces":     {[]string{"sim", "--piece-length", "1GiB"}, true},
		"bad fault file":  {[]string{"faults", filepath.Join("..", "..", "testnet", "testdata", "bad-action.yaml")}, true},
		"missing faults":  {[]string{"faults", "does-not-exist.yaml"}, true},
		"bad bandwidth":   {[]string{"sim", "--bandwidth", "fast"}, false},
		"no fault files":  {[]string{"faults"}, false},
		"bad output flag": {[]string{"sim", "--output", "xml"}, false},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := run(t, tt.args...)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.usage && clikit.ExitCode(err) != clikit.ExitUsage {
				t.Fatalf("exit code %d for %v, want %d", clikit.ExitCode(err), err, clikit.ExitUsage)
			}
		})
	}
}
