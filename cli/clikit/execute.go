package clikit

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Main runs the command tree cmd with the process's arguments and returns
// the exit code; a binary's main is
//
//	func main() { os.Exit(clikit.Main(dfget.NewCommand())) }
//
// See [Execute].
func Main(cmd *cobra.Command) int {
	return Execute(context.Background(), cmd, os.Args[1:], os.Stderr)
}

// Execute runs cmd with args and ctx, prints a failure to stderr as
//
//	<binary>: error: <message>
//	<binary>: hint: <hint>        (when the error carries one, see WithHint)
//
// and returns the exit code ([ExitCode]). Usage mistakes exit with
// ExitUsage and a hint pointing at --help: unknown flags, bad flag values,
// wrong argument counts (any Args validator), unknown subcommands and
// missing required flags. Cobra's own printing of errors and usage is
// silenced, so each failure is reported once. Execute takes over the
// tree's SilenceErrors, SilenceUsage, flag error function and Args
// validators; tests call it with their own args and stderr.
func Execute(ctx context.Context, cmd *cobra.Command, args []string, stderr io.Writer) int {
	cmd.SilenceErrors = true
	cmd.SilenceUsage = true
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	cmd.SetArgs(args)
	cmd.SetFlagErrorFunc(usageError)
	markArgErrors(cmd)

	ran, err := cmd.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if ExitCode(err) == ExitFailure && isCobraUsage(err) {
		err = usageError(ran, err)
	}
	name := cmd.Name()
	fmt.Fprintf(stderr, "%s: error: %v\n", name, err)
	if hint := hintOf(err); hint != "" {
		fmt.Fprintf(stderr, "%s: hint: %s\n", name, hint)
	}
	return ExitCode(err)
}

// usageError marks err, a mistake in how c was invoked, as a usage error
// with a hint to c's help. It is also the tree's flag error function.
func usageError(c *cobra.Command, err error) error {
	return WithHint(UsageError(err), fmt.Sprintf("run '%s --help' for usage", c.CommandPath()))
}

// markArgErrors makes every Args validator in the tree return usage
// errors. Commands without one keep it nil: cobra then checks for unknown
// subcommands itself (see isCobraUsage).
func markArgErrors(c *cobra.Command) {
	if validate := c.Args; validate != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if err := validate(c, args); err != nil {
				return usageError(c, err)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markArgErrors(sub)
	}
}

// cobraUsagePrefixes start the errors cobra makes, untyped, for mistakes
// that are not flag parsing or Args validation.
var cobraUsagePrefixes = []string{
	"unknown command ",                        // legacy subcommand check
	"required flag(s) ",                       // MarkFlagRequired
	"if any flags in the group ",              // MarkFlagsRequiredTogether, MarkFlagsMutuallyExclusive
	"at least one of the flags in the group ", // MarkFlagsOneRequired
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range cobraUsagePrefixes {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
