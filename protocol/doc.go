// Package protocol is the wire contract shared by every dragonfly component:
// protocol IDs, task identity (task IDs and their CIDs), digests, piece math,
// length-delimited framing with hard size limits, and validation of the
// protobuf messages in protocol/pb.
//
// It imports nothing from node, scheduler, manager or storage. Its
// subpackages p2p (the libp2p host every daemon runs) and admission (the
// member protocol) live here too, because node, scheduler and manager must
// not import each other yet all speak them. Everything here is part of the wire contract; task ID derivation
// in particular is pinned by golden vectors in testdata/ and must never
// change for an existing version.
package protocol
