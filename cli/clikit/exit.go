package clikit

import "fmt"

// Exit codes of every dragonfly binary (also listed in docs/cli.md).
const (
	ExitOK          = 0 // success
	ExitFailure     = 1 // anything else that went wrong
	ExitUsage       = 2 // bad flag, argument, flag value or configuration
	ExitNotFound    = 3 // the task, file or object asked for does not exist
	ExitUnavailable = 4 // a service is not reachable (dfnode's socket, a scheduler)
)

// ExitError decorates an error with an exit code, a hint for the user, or
// both. Code 0 means "no opinion": the code comes from an ExitError
// further down the chain, else it is ExitFailure. Its message is the
// wrapped error's; the hint is printed on its own line by [Main].
type ExitError struct {
	Code int
	Hint string
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// WithCode returns err with exit code code (nil stays nil).
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// WithHint returns err with a line telling the user what to do about it,
// such as "is dfnode running? start it with: dfnode run". The exit code of
// err is kept. Nil stays nil.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &ExitError{Hint: hint, Err: err}
}

// UsageError marks err as a usage error: exit code ExitUsage.
func UsageError(err error) error { return WithCode(ExitUsage, err) }

// ExitCode returns the exit code for err: ExitOK for nil, else the code of
// the outermost [ExitError] that has one, else ExitFailure.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if e := findExit(err, func(e *ExitError) bool { return e.Code != 0 }); e != nil {
		return e.Code
	}
	return ExitFailure
}

// hintOf returns the hint of the outermost [ExitError] that has one.
func hintOf(err error) string {
	if e := findExit(err, func(e *ExitError) bool { return e.Hint != "" }); e != nil {
		return e.Hint
	}
	return ""
}

// findExit walks err's tree in the order errors.As does and returns the
// first *ExitError for which ok holds.
func findExit(err error, ok func(*ExitError) bool) *ExitError {
	for err != nil {
		if e, is := err.(*ExitError); is && ok(e) {
			return e
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if e := findExit(inner, ok); e != nil {
					return e
				}
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}
