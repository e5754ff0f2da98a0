package manager

import (
	"context"

	"github.com/dragonfly-p2p/df/manager/dynconfig"
	"github.com/dragonfly-p2p/df/manager/p2pexec"
)

// directory lists the active instances (from keepalives) for the executor,
// through the dynconfig snapshot.
type directory struct{ m *Manager }

var _ p2pexec.Directory = directory{}

func peers(in []dynconfig.Instance) []p2pexec.Peer {
	out := make([]p2pexec.Peer, 0, len(in))
	for _, i := range in {
		out = append(out, p2pexec.Peer{ID: i.ID, Addrs: i.Addrs})
	}
	return out
}

func (d directory) SeedPeers(ctx context.Context, cluster string) ([]p2pexec.Peer, error) {
	c, err := d.m.dyn.Scheduler(ctx, cluster)
	if err != nil {
		return nil, err
	}
	return peers(c.Cluster.SeedPeers), nil
}

func (d directory) Members(ctx context.Context) ([]p2pexec.Peer, error) {
	cs, err := d.m.st.Clusters()
	if err != nil {
		return nil, err
	}
	var out []p2pexec.Peer
	for _, c := range cs {
		sc, err := d.m.dyn.Scheduler(ctx, c.Name)
		if err != nil {
			continue
		}
		out = append(out, peers(sc.Cluster.SeedPeers)...)
		out = append(out, peers(sc.Cluster.Schedulers)...)
	}
	return out, nil
}
