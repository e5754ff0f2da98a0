// Package testnet runs simulated dragonfly networks for tests, benchmarks
// and demos: clusters of real nodes in one process (real libp2p hosts on
// loopback, real stores on disk), a real HTTP origin that counts what it
// serves, and helpers that wait for conditions instead of sleeping.
package testnet
