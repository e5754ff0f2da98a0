package clikit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// newTool is a small command tree: "tool [ARG]" and "tool get NAME --out F".
func newTool(run error) *cobra.Command {
	root := &cobra.Command{Use: "tool", Args: cobra.MaximumNArgs(1),
		RunE: func(*cobra.Command, []string) error { return run }}
	var out, a, b string
	get := &cobra.Command{Use: "get NAME", Args: cobra.ExactArgs(1),
		RunE: func(*cobra.Command, []string) error { return run }}
	get.Flags().StringVar(&out, "out", "", "")
	get.Flags().StringVar(&a, "a", "", "")
	get.Flags().StringVar(&b, "b", "", "")
	if err := get.MarkFlagRequired("out"); err != nil {
		panic(err)
	}
	get.MarkFlagsMutuallyExclusive("a", "b")
	get.Flags().IntP("count", "n", 1, "")
	root.AddCommand(get)
	return root
}

// newGroupTool is a root with subcommands only, like dfcache.
func newGroupTool(run error) *cobra.Command {
	root := &cobra.Command{Use: "tool"}
	root.AddCommand(&cobra.Command{Use: "list", RunE: func(*cobra.Command, []string) error { return run }})
	return root
}

func TestExecute(t *testing.T) {
	noDaemon := WithCode(ExitUnavailable, errors.New("dial unix /run/df.sock: connect: no such file"))
	tests := []struct {
		name   string
		tree   func(run error) *cobra.Command // default newTool
		args   []string
		run    error
		code   int
		stderr string // exact; "" means nothing printed
		has    string // substring, when the exact text is cobra's business
		help   bool   // usage expected on stdout
	}{
		{name: "ok", code: ExitOK},
		{name: "help", args: []string{"--help"}, code: ExitOK, help: true},
		{name: "failure", run: errors.New("boom"), code: ExitFailure, stderr: "tool: error: boom\n"},
		{name: "not found", run: fmt.Errorf("stat: %w", WithCode(ExitNotFound, errors.New("no such task"))),
			code: ExitNotFound, stderr: "tool: error: stat: no such task\n"},
		{name: "hint keeps code and context", run: fmt.Errorf("get: %w", WithHint(noDaemon, "is dfnode running? start it with: dfnode run")),
			code: ExitUnavailable, stderr: "tool: error: get: dial unix /run/df.sock: connect: no such file\n" +
				"tool: hint: is dfnode running? start it with: dfnode run\n"},
		{name: "usage error from RunE", run: UsageError(errors.New("-O FILE is required")), code: ExitUsage,
			stderr: "tool: error: -O FILE is required\n"},
		{name: "unknown flag", args: []string{"--nope"}, code: ExitUsage,
			stderr: "tool: error: unknown flag: --nope\ntool: hint: run 'tool --help' for usage\n"},
		{name: "bad flag value", args: []string{"get", "x", "--out=f", "-n", "many"}, code: ExitUsage,
			has: "tool: hint: run 'tool get --help' for usage\n"},
		{name: "too many args", args: []string{"a", "b"}, code: ExitUsage,
			stderr: "tool: error: accepts at most 1 arg(s), received 2\ntool: hint: run 'tool --help' for usage\n"},
		{name: "missing arg in subcommand", args: []string{"get", "--out=f"}, code: ExitUsage,
			stderr: "tool: error: accepts 1 arg(s), received 0\ntool: hint: run 'tool get --help' for usage\n"},
		{name: "required flag", args: []string{"get", "x"}, code: ExitUsage,
			stderr: "tool: error: required flag(s) \"out\" not set\ntool: hint: run 'tool get --help' for usage\n"},
		{name: "exclusive flags", args: []string{"get", "x", "--out=f", "--a=1", "--b=2"}, code: ExitUsage,
			has: "tool: hint: run 'tool get --help' for usage\n"},
		{name: "unknown subcommand", tree: newGroupTool, args: []string{"lst"}, code: ExitUsage,
			has: "tool: error: unknown command \"lst\" for \"tool\"\n\nDid you mean this?\n\tlist\n\ntool: hint: run 'tool --help' for usage\n"},
		{name: "subcommand of a group", tree: newGroupTool, args: []string{"list"}, run: errors.New("boom"), code: ExitFailure,
			stderr: "tool: error: boom\n"},
		{name: "usage error keeps its own code", args: []string{"get", "x", "--out=f"}, run: WithCode(ExitNotFound, errors.New("accepts nothing")),
			code: ExitNotFound, stderr: "tool: error: accepts nothing\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := tt.tree
			if tree == nil {
				tree = newTool
			}
			cmd := tree(tt.run)
			var stdout, stderr bytes.Buffer
			cmd.SetOut(&stdout)
			code := Execute(context.Background(), cmd, tt.args, &stderr)
			if code != tt.code {
				t.Fatalf("code = %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			got := stderr.String()
			switch {
			case tt.has != "":
				if !strings.Contains(got, tt.has) {
					t.Fatalf("stderr %q lacks %q", got, tt.has)
				}
			case got != tt.stderr:
				t.Fatalf("stderr = %q, want %q", got, tt.stderr)
			}
			if printed := strings.Contains(stdout.String(), "Usage:"); printed != tt.help {
				t.Fatalf("usage on stdout = %v, want %v:\n%s", printed, tt.help, stdout.String())
			}
			if code != ExitOK && strings.Count(got, "error:") != 1 {
				t.Fatalf("error printed %d times:\n%s", strings.Count(got, "error:"), got)
			}
		})
	}
}

// Cobra prints neither errors nor usage on its own.
func TestExecuteSilencesCobra(t *testing.T) {
	cmd := newTool(errors.New("boom"))
	var stdout, cobraErr, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&cobraErr)
	for _, args := range [][]string{{}, {"--nope"}, {"get"}} {
		Execute(context.Background(), cmd, args, &stderr)
	}
	if stdout.Len() != 0 || cobraErr.Len() != 0 {
		t.Fatalf("cobra printed: stdout %q, stderr %q", stdout.String(), cobraErr.String())
	}
}

func TestExitCode(t *testing.T) {
	notFound := WithCode(ExitNotFound, errors.New("gone"))
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "nil", err: nil, want: ExitOK},
		{name: "plain", err: errors.New("x"), want: ExitFailure},
		{name: "coded", err: notFound, want: ExitNotFound},
		{name: "wrapped", err: fmt.Errorf("stat: %w", notFound), want: ExitNotFound},
		{name: "hint only", err: WithHint(errors.New("x"), "try again"), want: ExitFailure},
		{name: "hint over code", err: WithHint(notFound, "check the ID"), want: ExitNotFound},
		{name: "outer code wins", err: UsageError(notFound), want: ExitUsage},
		{name: "joined", err: errors.Join(errors.New("a"), notFound), want: ExitNotFound},
		{name: "empty ExitError", err: &ExitError{}, want: ExitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.want {
				t.Fatalf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
	if WithCode(ExitUsage, nil) != nil || WithHint(nil, "x") != nil || UsageError(nil) != nil {
		t.Fatal("decorating nil gave an error")
	}
	if !errors.Is(WithHint(notFound, "h"), notFound) {
		t.Fatal("WithHint hides the error from errors.Is")
	}
}
