package clikit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of every dragonfly CLI (documented in docs/cli.md).
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitNotFound    = 3
	ExitUnavailable = 4
)

// ExitError carries an exit code (and an optional hint) with an error.
type ExitError struct {
	Code int
	Err  error
	Hint string
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// WithCode attaches an exit code to err.
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// WithHint attaches a line telling the user what to do.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return &ExitError{Code: ee.Code, Err: ee.Err, Hint: hint}
	}
	return &ExitError{Code: ExitFailure, Err: err, Hint: hint}
}

// UsageError marks err as a usage error (exit code 2).
func UsageError(err error) error { return WithCode(ExitUsage, err) }

// Main runs cmd with os.Args and returns the exit code; errors are printed
// to stderr as "<name>: error: <message>" (plus the hint, if any).
func Main(cmd *cobra.Command) int {
	return Execute(context.Background(), cmd, os.Args[1:], os.Stderr)
}

// Execute runs cmd with args (for tests) and returns the exit code.
func Execute(ctx context.Context, cmd *cobra.Command, args []string, stderr io.Writer) int {
	cmd.SilenceErrors = true
	cmd.SilenceUsage = true
	cmd.SetArgs(args)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return UsageError(fmt.Errorf("%w\nrun '%s --help' for usage", err, c.CommandPath()))
	})
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitFailure
	var ee *ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.Code
	case isUsage(err):
		code = ExitUsage
	}
	fmt.Fprintf(stderr, "%s: error: %s\n", cmd.Name(), err)
	if ee != nil && ee.Hint != "" {
		fmt.Fprintf(stderr, "%s: hint: %s\n", cmd.Name(), ee.Hint)
	}
	return code
}

// isUsage recognises cobra's own argument errors.
func isUsage(err error) bool {
	msg := err.Error()
	for _, s := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "requires at most", "required flag"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
