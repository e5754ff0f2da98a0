package node

import (
	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/node/schedclient"
)

// TriggerSeed runs this node's handler of a scheduler's seed trigger for r
// (tests: the scheduler's timing decides when a real one arrives).
func (n *Node) TriggerSeed(r download.Request) {
	n.seedTriggered(schedclient.Trigger{ID: r.ID, Kind: pbKind(r.Kind), URL: r.Source.URL, PieceLength: r.PieceLength})
}
