package node

import (
	"context"
	"errors"
	"time"

	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/node/preheat"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// preheatTasks is the node side of the preheat protocol: downloads go
// through the normal conductor (so the result is an ordinary task the
// scheduler and the DHT know), stat and delete through the same paths as
// the local API.
type preheatTasks struct{ n *Node }

var _ preheat.Tasks = preheatTasks{}

// preheatJob adapts a download job.
type preheatJob struct{ *download.Job }

func (j preheatJob) Progress() (done, total int64) {
	st := j.Stats()
	done = st.BytesFromPeers + st.BytesFromSource
	select {
	case <-j.Ready():
		if j.Err() == nil {
			total = j.Layout().ContentLength
		}
	default:
	}
	return done, total
}

func (t preheatTasks) Preheat(req protocol.PreheatRequest) (preheat.Job, error) {
	r := download.Request{
		ID: req.TaskID, Kind: storage.KindURL,
		Source: &download.SourceRequest{URL: req.URL, Header: req.Header},
		Tag:    req.Tag, Application: req.Application,
	}
	if req.HasDigest {
		r.Kind = storage.KindContent
	}
	job, err := t.n.dl.Start(r)
	if err != nil {
		return nil, err
	}
	return preheatJob{job}, nil
}

func (t preheatTasks) Where(ctx context.Context, req protocol.PreheatRequest) (preheat.Where, error) {
	n := t.n
	var w preheat.Where
	if info, err := n.store.Stat(ctx, req.TaskID); err == nil && info.Complete {
		w.Local = true
		w.Peers = append(w.Peers, n.host.ID().String())
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return w, err
	}
	schedCount := -1
	if n.sched != nil {
		if info, err := n.sched.Stat(ctx, req.TaskID); err == nil && info.Found {
			schedCount = int(info.CompletePeers)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for pi := range n.disc.FindProviders(fctx, req.TaskID, protocol.MaxPreheatPeers) {
		if pi.ID == n.host.ID() || len(w.Peers) >= protocol.MaxPreheatPeers {
			continue
		}
		w.Peers = append(w.Peers, pi.ID.String())
	}
	w.CompletePeers = len(w.Peers)
	if schedCount > w.CompletePeers {
		w.CompletePeers = schedCount
	}
	return w, nil
}

func (t preheatTasks) Delete(ctx context.Context, req protocol.PreheatRequest) error {
	err := t.n.Delete(ctx, req.TaskID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // nothing to delete here and no scheduler to ask: the goal holds
	}
	return err
}
