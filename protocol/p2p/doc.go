// Package p2p builds the libp2p host of every dragonfly daemon (dfnode,
// scheduler, manager): a persisted Ed25519 identity,
// QUIC first with TCP as the fallback, Noise and TLS security, explicit
// resource-manager limits, connection-manager watermarks and a connection
// gater that only lets Ed25519 peers through and drops peers that failed
// cluster admission.
package p2p
