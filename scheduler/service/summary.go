package service

import (
	"cmp"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol/dynclient"
	"github.com/dragonfly-p2p/df/scheduler/resource"
)

// Summary reports the swarm for the manager's keepalive: cumulative
// traffic since the service was created, how many hosts, tasks and peers
// it tracks, and up to maxHosts hosts (seed peers first, then the most
// recently seen), each with its location, load and task counts.
// maxHosts is capped at dynclient.MaxSummaryHosts.
func (s *Service) Summary(maxHosts int) dynclient.SchedulerSummary {
	maxHosts = min(max(maxHosts, 0), dynclient.MaxSummaryHosts)
	sum := dynclient.SchedulerSummary{Started: s.started, PeerBytes: s.peerBytes.Load(), SourceBytes: s.sourceBytes.Load()}
	// The service's lock stops scheduling: hold it to copy, never to sort
	// or encode (100,000 hosts: see BenchmarkSummary).
	type key struct {
		h    *resource.Host
		seed bool
		last time.Time
	}
	s.mu.Lock()
	sum.HostCount, sum.TaskCount, sum.PeerCount = s.store.Counts()
	keys := make([]key, 0, sum.HostCount)
	s.store.Hosts(func(h *resource.Host) { keys = append(keys, key{h, h.Seed(), h.LastSeen}) })
	s.mu.Unlock()
	if len(keys) > maxHosts {
		sum.HostsTruncated = true
		slices.SortFunc(keys, func(a, b key) int {
			if a.seed != b.seed {
				if a.seed {
					return -1
				}
				return 1
			}
			return b.last.Compare(a.last)
		})
		keys = keys[:maxHosts]
	}
	ids := make([]peer.ID, 0, len(keys))
	sum.Hosts = make([]dynclient.HostSummary, 0, len(keys))
	s.mu.Lock()
	for _, k := range keys {
		h := k.h
		if s.store.Host(h.ID) != h {
			continue // removed meanwhile
		}
		hs := dynclient.HostSummary{Hostname: h.Info.Hostname, IDC: h.Info.IDC,
			Location: slices.Clone(h.Info.Location), Type: dynclient.HostTypeNormal,
			UploadCapacity: h.Info.UploadCapacity, UploadRate: h.Info.UploadRate, InFlight: h.Info.InFlight,
			MaxUploads: h.Info.MaxUploads, LastSeen: h.LastSeen.UTC()}
		if h.Seed() {
			hs.Type = dynclient.HostTypeSeed
		}
		for _, p := range h.Peers() {
			hs.Tasks++
			if p.State == resource.PeerSucceeded {
				hs.TasksDone++
			}
		}
		ids = append(ids, h.ID)
		sum.Hosts = append(sum.Hosts, hs)
	}
	s.mu.Unlock()
	for i := range sum.Hosts {
		sum.Hosts[i].ID = ids[i].String()
	}
	slices.SortStableFunc(sum.Hosts, func(a, b dynclient.HostSummary) int { return cmp.Compare(a.Hostname, b.Hostname) })
	return sum
}

func (s *Service) countTraffic(backToSource bool, n uint64) {
	if backToSource {
		s.sourceBytes.Add(n)
	} else {
		s.peerBytes.Add(n)
	}
}
