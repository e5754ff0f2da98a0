package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/storage"
)

// The Node is the local API's service.
var _ api.Service = (*Node)(nil)

// ID returns the node's identity and dialable addresses.
func (n *Node) ID() api.IDInfo {
	info := api.IDInfo{PeerID: n.host.ID().String(), Seed: n.cfg.Seed, Mirror: n.MirrorAddr()}
	ai := n.AddrInfo()
	addrs, err := peer.AddrInfoToP2pAddrs(&ai)
	if err != nil {
		return info
	}
	for _, a := range addrs {
		info.Addrs = append(info.Addrs, a.String())
	}
	return info
}

// AddrInfo returns the node's peer ID and addresses.
func (n *Node) AddrInfo() peer.AddrInfo { return peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()} }

// Import stores content read from r and provides it to the cluster.
func (n *Node) Import(ctx context.Context, req api.ImportRequest, r io.Reader) (api.TaskInfo, error) {
	spec := storage.ImportSpec{Kind: req.Kind, Size: req.Size, PieceLength: req.PieceLength}
	if req.Kind == storage.KindNamed {
		id, err := protocol.NamedTaskID(req.Name, req.Tag)
		if err != nil {
			return api.TaskInfo{}, err
		}
		spec.ID = id
	}
	if req.PieceLength != 0 {
		if err := protocol.CheckPieceLength(req.PieceLength); err != nil {
			return api.TaskInfo{}, err
		}
	}
	start := time.Now()
	info, err := n.store.Import(ctx, spec, r)
	if err != nil {
		return api.TaskInfo{}, err
	}
	// Announce before returning, so other hosts can export it right away.
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := n.disc.ProvideWait(pctx, info.ID); err != nil {
		n.log.Warn("imported, but the first announcement failed; it will be retried", "task", info.ID.Short(), "err", err)
	}
	if n.sched != nil {
		if err := n.sched.Announce(pctx, info.ID, pbKind(info.Kind), info.Layout, info.ContentDigest); err != nil {
			n.log.Warn("imported, but the scheduler could not be told; peers will find it through the DHT", "task", info.ID.Short(), "err", err)
		}
	}
	cancel()
	n.log.Info("imported", "task", info.ID.Short(), "bytes", info.Layout.ContentLength, "took", time.Since(start))
	return taskInfo(info), nil
}

// List returns the local tasks.
func (n *Node) List(ctx context.Context) ([]api.TaskInfo, error) {
	tasks, err := n.store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.TaskInfo, 0, len(tasks))
	for _, t := range tasks {
		out = append(out, taskInfo(t))
	}
	return out, nil
}

// Stat describes a task from the local store, or else from the first peer
// found holding it.
func (n *Node) Stat(ctx context.Context, id protocol.TaskID, localOnly bool) (api.StatInfo, error) {
	info, err := n.store.Stat(ctx, id)
	if err == nil {
		return api.StatInfo{Task: taskInfo(info), Local: true}, nil
	}
	if !errors.Is(err, storage.ErrNotFound) || localOnly {
		return api.StatInfo{}, err
	}
	if n.sched != nil {
		if st, ok := n.schedStat(ctx, id); ok {
			return st, nil
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var found int
	for pi := range n.disc.FindProviders(fctx, id, 8) {
		found++
		n.host.Peerstore().AddAddrs(pi.ID, pi.Addrs, time.Minute)
		h, err := n.peerHeader(fctx, pi.ID, id)
		if err != nil {
			n.log.Debug("provider did not answer stat", "peer", pi.ID, "err", err)
			continue
		}
		t := api.TaskInfo{
			ID: id.String(), ContentLength: h.Layout.ContentLength, PieceLength: h.Layout.PieceLength,
			Pieces: h.Layout.PieceCount(), Complete: h.Complete,
		}
		if !h.ContentDigest.IsZero() {
			t.ContentDigest = h.ContentDigest.String()
		}
		return api.StatInfo{Task: t, Providers: found}, nil
	}
	return api.StatInfo{}, fmt.Errorf("task %s: %w (nowhere in the cluster)", id, storage.ErrNotFound)
}

// schedStat asks the task's scheduler (false: unknown there or unreachable).
func (n *Node) schedStat(ctx context.Context, id protocol.TaskID) (api.StatInfo, bool) {
	info, err := n.sched.Stat(ctx, id)
	if err != nil || !info.Found || info.CompletePeers == 0 {
		return api.StatInfo{}, false
	}
	t := api.TaskInfo{ID: id.String(), Complete: true}
	if info.KnownLength {
		t.ContentLength, t.PieceLength, t.Pieces = info.Layout.ContentLength, info.Layout.PieceLength, info.Layout.PieceCount()
	}
	if !info.ContentDigest.IsZero() {
		t.ContentDigest = info.ContentDigest.String()
	}
	return api.StatInfo{Task: t, Providers: int(info.CompletePeers)}, true
}

// peerHeader reads a peer's pieces-sync header for id.
func (n *Node) peerHeader(ctx context.Context, p peer.ID, id protocol.TaskID) (protocol.SyncHeader, error) {
	s, err := n.gated.NewStream(ctx, p, protocol.PiecesSyncID)
	if err != nil {
		return protocol.SyncHeader{}, err
	}
	defer s.Reset() // we only want the header
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if err := protocol.WriteMsg(s, &pb.SyncRequest{TaskId: id.Multihash()}); err != nil {
		return protocol.SyncHeader{}, err
	}
	var m pb.SyncMessage
	if err := protocol.ReadMsg(bufio.NewReader(s), &m, protocol.MaxSyncMessageSize); err != nil {
		return protocol.SyncHeader{}, err
	}
	hm, ok := m.Body.(*pb.SyncMessage_Header)
	if !ok {
		return protocol.SyncHeader{}, protocol.ErrBadMessage
	}
	h, err := protocol.ParseSyncHeader(hm.Header)
	if err == nil && h.Status != pb.Status_STATUS_OK {
		err = fmt.Errorf("%w: peer answered %v", storage.ErrNotFound, h.Status)
	}
	return h, err
}

// Delete removes the local copy and withdraws it from the cluster; with a
// scheduler, every node holding the task deletes it too.
func (n *Node) Delete(ctx context.Context, id protocol.TaskID) error {
	n.disc.Withdraw(id)
	err := n.store.Delete(ctx, id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if n.sched != nil {
		if serr := n.sched.Delete(ctx, id); serr != nil {
			n.log.Warn("the scheduler could not delete the task cluster-wide", "task", id.Short(), "err", serr)
		} else {
			err = nil // deleted cluster-wide, even if this node had no copy
		}
	}
	if err != nil {
		return err
	}
	n.log.Info("deleted", "task", id.Short())
	return nil
}

// Export streams a task, downloading it from peers if needed. A local copy
// knows its own kind; otherwise kind says what to verify against (a content
// task's ID is its digest).
func (n *Node) Export(ctx context.Context, id protocol.TaskID, kind storage.Kind) (api.Content, error) {
	if info, err := n.store.Stat(ctx, id); err == nil {
		kind = info.Kind
	}
	return n.dl.Start(download.Request{ID: id, Kind: kind})
}

// Download streams a URL through the cluster.
func (n *Node) Download(ctx context.Context, req api.DownloadRequest) (api.Content, error) {
	r, err := DownloadRequest(req)
	if err != nil {
		return nil, err
	}
	return n.dl.Start(r)
}

// DownloadRequest turns an API download request into a conductor request.
func DownloadRequest(req api.DownloadRequest) (download.Request, error) {
	r := download.Request{
		PieceLength:  req.PieceLength,
		Source:       &download.SourceRequest{URL: req.URL, Header: http.Header(req.Header)},
		NoBackSource: req.NoBackSource,
		RateLimit:    req.RateLimit,
		Priority:     req.Priority,
		Tag:          req.Tag,
		Application:  req.Application,
	}
	if req.Priority < 0 || req.Priority > protocol.MaxPriority {
		return r, fmt.Errorf("%w: priority %d outside 0–6", api.ErrBadRequest, req.Priority)
	}
	if _, err := protocol.CanonicalURL(req.URL, nil); err != nil {
		return r, err
	}
	if req.RateLimit < 0 {
		return r, fmt.Errorf("%w: negative rate limit", api.ErrBadRequest)
	}
	if req.Digest != "" {
		d, err := protocol.ParseDigest(req.Digest)
		if err != nil {
			return r, err
		}
		r.ID, r.Kind = protocol.ContentTaskID(d), storage.KindContent
		return r, nil
	}
	id, err := protocol.URLTask{
		URL: req.URL, Tag: req.Tag, Application: req.Application,
		PieceLength: req.PieceLength, FilteredQueryParams: req.FilteredQueryParams,
	}.ID()
	if err != nil {
		return r, err
	}
	r.ID, r.Kind = id, storage.KindURL
	return r, nil
}

func taskInfo(t storage.TaskInfo) api.TaskInfo {
	out := api.TaskInfo{
		ID:             t.ID.String(),
		Kind:           t.Kind.String(),
		ContentLength:  t.Layout.ContentLength,
		PieceLength:    t.Layout.PieceLength,
		Pieces:         t.Layout.PieceCount(),
		VerifiedPieces: t.VerifiedPieces,
		Complete:       t.Complete,
		URL:            t.Origin.URL,
		CreatedAt:      t.CreatedAt,
		AccessedAt:     t.AccessedAt,
	}
	if !t.ContentDigest.IsZero() {
		out.ContentDigest = t.ContentDigest.String()
	}
	return out
}
