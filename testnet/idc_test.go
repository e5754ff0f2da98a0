package testnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/testnet"
	"github.com/dragonfly-p2p/df/testnet/shape"
)

// Two IDCs of two hosts in-process: every host ends with the verified file
// and the hosts' bytes are split into inside and across IDCs, adding up.
func TestTwoIDCSwarmInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("shaped swarm: a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spec := testnet.SwarmSpec{Nodes: 4, Size: 8 << 20, PieceLength: 256 << 10, Up: shape.Mbit(25), Down: shape.Mbit(25),
		OriginUp: shape.Mbit(25), Schedulers: 1, IDCs: 2, InterIDC: shape.Mbit(25)}
	res, err := testnet.RunSwarm(ctx, t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	tr := res.Traffic
	t.Logf("%s; traffic %+v", res, *tr)
	if res.Backend != testnet.BackendInProcess || len(tr.IDCs) != 2 {
		t.Fatalf("backend %q, %d IDCs", res.Backend, len(tr.IDCs))
	}
	if tr.IntraIDC+tr.InterIDC != tr.PeerBytes || tr.IDCs[0].IntraIDC+tr.IDCs[1].IntraIDC != tr.IntraIDC {
		t.Fatalf("the split does not add up: %+v", *tr)
	}
	// Three of the four copies come from peers; one IDC's hosts must get
	// the pieces the origin sent to the other.
	if tr.PeerBytes < 2*spec.Size || tr.InterIDC == 0 || tr.IntraIDC == 0 {
		t.Fatalf("traffic %+v, want ≥ %d bytes between hosts, some inside and some across", *tr, 2*spec.Size)
	}
}
