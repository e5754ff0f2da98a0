// Package clikit is the process plumbing every dragonfly binary shares
// (dfnode, dfget, dfcache, scheduler, manager, dftestnet). It knows about
// processes, flags, files, terminals and HTTP; it knows nothing about
// peers, pieces, tasks or schedulers. Business logic never lives here, and
// clikit imports nothing from this module: it is a leaf that the cli/*
// packages lean on.
//
// What lives here:
//
//   - Configuration layering for daemons ([LoadConfig]): defaults < YAML
//     file (--config, strict: unknown keys are errors with their line) <
//     environment twins < flags, then the config's Validate method. Every
//     flag has an environment twin PREFIX_FLAG_NAME ([EnvName]): --data-dir
//     of dfnode is DFNODE_DATA_DIR; list values are comma-separated.
//     [DocumentEnv] writes the twin into each flag's --help line, and
//     [ApplyEnv] gives CLIs without a config file the same twins.
//   - Logging ([NewLogger]): log/slog, JSON for daemons and text for CLIs,
//     with attributes whose key looks secret masked ([RedactSecrets]). The
//     logger is returned, never installed globally: pass it down.
//   - The ops listener ([OpsServer]): /metrics, /livez, /readyz and, on a
//     loopback address only, /debug/pprof/.
//   - Process lifecycle: [SignalContext] (SIGINT/SIGTERM) and [RunAll], which
//     runs components with a Run(ctx) error method and stops them together.
//   - CLI output: --output text|json ([AddOutputFlag], [Print]), progress
//     bars on a terminal's stderr ([NewProgress]), and exit codes
//     ([Main], [ExitError]).
//
// Exit codes are the same for every binary:
//
//	0 ExitOK           success
//	1 ExitFailure      anything else that went wrong
//	2 ExitUsage        bad flag, argument, flag value or configuration
//	3 ExitNotFound     the thing asked for does not exist
//	4 ExitUnavailable  a service (dfnode's socket, a scheduler) is not reachable
//
// Errors reach the user as "<binary>: error: <message>", followed by
// "<binary>: hint: <what to do>" when the error carries a hint ([WithHint]).
package clikit
