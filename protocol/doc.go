// Package protocol is the wire contract shared by every dragonfly component:
// protocol IDs, task identity (task IDs and their CIDs), digests, piece math,
// length-delimited framing with hard size limits, and validation of the
// protobuf messages in protocol/pb.
//
// It is a leaf package: it imports nothing from node, scheduler, manager or
// storage. Everything here is part of the wire contract; task ID derivation
// in particular is pinned by golden vectors in testdata/ and must never
// change for an existing version.
package protocol
