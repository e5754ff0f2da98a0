// Package runtimeconfig points container runtimes at dfnode's registry
// mirror: it writes containerd's certs.d/<registry>/hosts.toml (backing up
// and later restoring a file it did not write) and merges the mirror into
// Docker's daemon.json. The dfnode CLI's "config containerd" and "config
// docker" subcommands are thin wrappers around it.
//
// containerd tries the mirror first for pull and resolve, with a short
// dial timeout so that a node whose dfnode is down is skipped quickly, and
// keeps the registry as server, so pulls still work without dfnode. Docker
// applies registry-mirrors to Docker Hub only.
package runtimeconfig
