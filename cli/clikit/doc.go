// Package clikit is the process plumbing every dragonfly binary shares:
// layered configuration (defaults < YAML file < environment < flags, every
// flag with an environment twin), structured logging with secrets
// redacted, the ops listener (/metrics, /livez, /readyz, pprof on
// loopback), signal handling, CLI output (text or JSON), progress bars and
// exit codes. Business logic never lives here.
package clikit
