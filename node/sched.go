package node

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/node/schedclient"
	"github.com/dragonfly-p2p/df/node/source"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/storage"
)

// rateMeter turns a byte counter into a rate between announcements.
type rateMeter struct {
	mu    sync.Mutex
	last  int64
	at    time.Time
	value uint64 // bits per second
}

func (m *rateMeter) update(total int64) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if !m.at.IsZero() {
		if dt := now.Sub(m.at).Seconds(); dt > 0.5 {
			m.value = uint64(float64(total-m.last) * 8 / dt)
		}
	}
	if m.at.IsZero() || now.Sub(m.at) > 500*time.Millisecond {
		m.last, m.at = total, now
	}
	return m.value
}

// hostAnnounce describes this host to the schedulers.
func (n *Node) hostAnnounce() *pb.HostAnnounce {
	hostname, _ := os.Hostname()
	if len(hostname) > 253 {
		hostname = hostname[:253]
	}
	capacity := uint64(n.cfg.Host.UploadCapacity) * 8
	if capacity == 0 {
		capacity = uint64(n.cfg.Limits.UploadRate) * 8
	}
	m := &pb.HostAnnounce{
		Hostname:          hostname,
		Location:          n.cfg.Host.Location,
		Idc:               n.cfg.Host.IDC,
		Type:              pb.HostType_HOST_TYPE_NORMAL,
		UploadCapacityBps: min(capacity, protocol.MaxUploadBPS),
		UploadRateBps:     min(n.upRate.update(n.up.BytesSent()), protocol.MaxUploadBPS),
		UploadsInFlight:   uint32(n.up.InFlight()),
		MaxUploads:        uint32(n.up.MaxConcurrent()),
	}
	if n.cfg.Seed {
		m.Type = pb.HostType_HOST_TYPE_SEED
	}
	for i, a := range n.host.Addrs() {
		if i == protocol.MaxAddrs {
			break
		}
		if b := a.Bytes(); len(b) <= protocol.MaxAddrLength {
			m.Addrs = append(m.Addrs, b)
		}
	}
	return m
}

// seedTriggered starts a back-to-source download a scheduler asked for.
func (n *Node) seedTriggered(t schedclient.Trigger) {
	if !n.cfg.Seed {
		n.log.Warn("ignoring a seed trigger: this node is not a seed", "task", t.ID.Short())
		return
	}
	req := download.Request{
		ID: t.ID, Kind: storageKind(t.Kind), PieceLength: t.PieceLength,
		Source:   &download.SourceRequest{URL: t.URL},
		Priority: int(t.Priority), Tag: t.Tag, Application: t.Application,
		SeedTriggered: true,
	}
	job, err := n.dl.Start(req)
	if err != nil {
		n.log.Warn("seed trigger", "task", t.ID.Short(), "err", err)
		return
	}
	n.log.Info("seed triggered: fetching from the origin", "task", t.ID.Short(), "url", source.RedactURL(t.URL))
	go func() {
		defer job.Release()
		if err := job.Wait(n.ctx); err != nil {
			n.log.Warn("seed download failed", "task", t.ID.Short(), "err", err)
		}
	}()
}

func storageKind(k pb.TaskKind) storage.Kind {
	switch k {
	case pb.TaskKind_TASK_KIND_CONTENT:
		return storage.KindContent
	case pb.TaskKind_TASK_KIND_NAMED:
		return storage.KindNamed
	}
	return storage.KindURL
}

func pbKind(k storage.Kind) pb.TaskKind {
	switch k {
	case storage.KindContent:
		return pb.TaskKind_TASK_KIND_CONTENT
	case storage.KindNamed:
		return pb.TaskKind_TASK_KIND_NAMED
	}
	return pb.TaskKind_TASK_KIND_URL
}

// followTaskDeletes applies cluster-wide deletes published by this node's
// schedulers (and only by them).
func (n *Node) followTaskDeletes(ctx context.Context) error {
	if n.sched == nil {
		return nil
	}
	topic, err := n.ps.Join(protocol.TopicTaskDeletes)
	if err != nil {
		return err
	}
	sub, err := topic.Subscribe()
	if err != nil {
		return err
	}
	defer sub.Cancel()
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return nil
		}
		if !n.sched.IsScheduler(msg.GetFrom()) {
			n.log.Warn("ignoring a task delete not published by a known scheduler", "from", msg.GetFrom())
			continue
		}
		id, err := schedclient.DecodeTaskDelete(msg.Data)
		if err != nil {
			continue
		}
		n.disc.Withdraw(id)
		if err := n.store.Delete(ctx, id); err == nil {
			n.log.Info("deleted on a scheduler's request", "task", id.Short())
		} else if !errors.Is(err, storage.ErrNotFound) {
			n.log.Warn("delete requested by a scheduler", "task", id.Short(), "err", err)
		}
	}
}
