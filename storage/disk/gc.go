package disk

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// GC evicts expired tasks, then least recently used ones until usage is
// under the quota's low watermark; see storage.Store.
func (s *Store) GC(ctx context.Context) (storage.GCStats, error) {
	if err := s.enter(); err != nil {
		return storage.GCStats{}, err
	}
	target := int64(-1)
	if s.opts.quota > 0 {
		target = s.opts.quota - s.opts.quota*(100-lowWatermarkPercent)/100
	}
	stats, err := s.gc(ctx, target)
	s.leave()
	s.notifyEvicted(stats.Evicted)
	return stats, err
}

// Run collects garbage every WithGCInterval until ctx ends or the store
// closes. It always returns nil.
func (s *Store) Run(ctx context.Context) error {
	tick := time.NewTicker(s.opts.gcInterval)
	defer tick.Stop()
	for {
		if _, err := s.GC(ctx); err != nil && ctx.Err() == nil {
			if s.enter() != nil {
				return nil
			}
			s.leave()
			s.log.Error("garbage collection", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case <-tick.C:
		}
	}
}

// candidate is an evictable task as GC saw it.
type candidate struct {
	t        *task
	accessed time.Time
	complete bool
	size     int64
}

// gc evicts TTL-expired tasks, then, if target ≥ 0, least recently used
// tasks until reserved plus used space is at most target. Tasks with open
// handles are never evicted.
func (s *Store) gc(ctx context.Context, target int64) (storage.GCStats, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	var stats storage.GCStats
	now := s.opts.now()
	cands := s.candidates()
	rest := cands[:0]
	for _, c := range cands {
		if !s.expired(c, now) {
			rest = append(rest, c)
			continue
		}
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		s.evict(c, "ttl", &stats)
	}
	if target < 0 {
		return stats, nil
	}
	for _, c := range rest {
		s.mu.Lock()
		over := s.used+s.reserved > target
		s.mu.Unlock()
		if !over {
			break
		}
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		s.evict(c, "lru", &stats)
	}
	return stats, nil
}

// candidates lists idle tasks, least recently used first.
func (s *Store) candidates() []candidate {
	s.mu.Lock()
	out := make([]candidate, 0, len(s.tasks))
	for _, t := range s.tasks {
		t.mu.Lock()
		if t.handles == 0 && t.live == nil && !t.removed {
			out = append(out, candidate{t: t, accessed: t.info.AccessedAt, complete: t.info.Complete, size: t.info.Layout.ContentLength})
		}
		t.mu.Unlock()
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b candidate) int { return a.accessed.Compare(b.accessed) })
	return out
}

func (s *Store) expired(c candidate, now time.Time) bool {
	ttl := s.opts.taskTTL
	if !c.complete {
		ttl = s.opts.incompleteTTL
	}
	return ttl > 0 && now.Sub(c.accessed) > ttl
}

// evict removes an idle task unless it became busy or was opened since.
func (s *Store) evict(c candidate, why string, stats *storage.GCStats) {
	unlock, ok := s.tryLockID(c.t.id)
	if !ok {
		return
	}
	defer unlock()
	if s.lookup(c.t.id) != c.t || !c.t.idle() {
		return
	}
	if err := s.removeTask(c.t); err != nil {
		s.log.Error("cannot evict task", "task", c.t.id.Short(), "err", err)
		return
	}
	stats.Evicted = append(stats.Evicted, c.t.id)
	stats.FreedBytes += c.size
	s.log.Info("task evicted", "task", c.t.id.Short(), "reason", why, "bytes", c.size, "complete", c.complete)
}

// notifyEvicted calls the evict hook; never under a lock.
func (s *Store) notifyEvicted(ids []protocol.TaskID) {
	if s.opts.evict == nil {
		return
	}
	for _, id := range ids {
		s.opts.evict(id)
	}
}

// reserve accounts n bytes against the quota for a task being created or
// imported, running GC if they do not fit. It returns what GC evicted.
func (s *Store) reserve(ctx context.Context, n int64) ([]protocol.TaskID, error) {
	quota := s.opts.quota
	if s.tryReserve(n) {
		return nil, nil
	}
	if n > quota {
		return nil, fmt.Errorf("disk: %w: %d bytes exceed the quota of %d", storage.ErrNoSpace, n, quota)
	}
	stats, err := s.gc(ctx, quota-n)
	if err != nil {
		return stats.Evicted, err
	}
	if s.tryReserve(n) {
		return stats.Evicted, nil
	}
	u := s.Usage()
	return stats.Evicted, fmt.Errorf("disk: %w: need %d bytes, %d of %d in use by tasks that are open or being written",
		storage.ErrNoSpace, n, u.Bytes, quota)
}

func (s *Store) tryReserve(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.opts.quota; q > 0 && s.used+s.reserved+n > q {
		return false
	}
	s.reserved += n
	return true
}

func (s *Store) unreserve(n int64) {
	s.mu.Lock()
	s.reserved -= n
	s.mu.Unlock()
}
