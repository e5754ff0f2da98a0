package protocol

import "github.com/libp2p/go-libp2p/core/protocol"

// Prefix is the root of every dragonfly protocol ID. It is picked once and
// kept: changing it splits a cluster.
const Prefix = "/dragonfly"

// Versioned libp2p protocol IDs.
const (
	// PieceID serves piece data (see pb.PieceRequest).
	PieceID protocol.ID = Prefix + "/piece/1.0.0"
	// PiecesSyncID streams which pieces a peer holds (see pb.SyncRequest).
	PiecesSyncID protocol.ID = Prefix + "/pieces-sync/1.0.0"
	// MemberID proves cluster membership (see pb.MemberChallenge).
	MemberID protocol.ID = Prefix + "/member/1.0.0"
	// ScheduleID connects nodes and schedulers (see pb.ScheduleRequest).
	ScheduleID protocol.ID = Prefix + "/schedule/1.0.0"
	// ProbeID measures round trips between nodes (see pb.ProbeEcho).
	ProbeID protocol.ID = Prefix + "/probe/1.0.0"
	// PreheatID lets the manager have a seed peer download, stat or delete
	// a task (see pb.PreheatRequest).
	PreheatID protocol.ID = Prefix + "/preheat/1.0.0"
)

// DHTPrefix is handed to go-libp2p-kad-dht as its protocol prefix, which
// yields "/dragonfly/kad/1.0.0": our DHT never mixes with the public IPFS one.
const DHTPrefix protocol.ID = Prefix

// Gossipsub topic names.
const (
	// TopicProviders carries provider withdrawals and re-announcements
	// (see pb.ProviderEvent) so that a deleted copy stops being used
	// cluster-wide before its DHT record expires.
	TopicProviders = Prefix + "/providers/1.0.0"
	// TopicTaskDeletes carries task deletions decided by a scheduler
	// (pb.TaskDelete); nodes honour them only from known schedulers.
	TopicTaskDeletes = Prefix + "/task-deletes/1.0.0"
)
