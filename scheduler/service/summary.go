package service

import (
	"cmp"
	"slices"

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
	s.mu.Lock()
	defer s.mu.Unlock()
	sum.HostCount, sum.TaskCount, sum.PeerCount = s.store.Counts()
	hosts := make([]*resource.Host, 0, min(sum.HostCount, 4*maxHosts))
	s.store.Hosts(func(h *resource.Host) { hosts = append(hosts, h) })
	if len(hosts) > maxHosts {
		sum.HostsTruncated = true
		slices.SortFunc(hosts, func(a, b *resource.Host) int {
			if a.Seed() != b.Seed() {
				if a.Seed() {
					return -1
				}
				return 1
			}
			return b.LastSeen.Compare(a.LastSeen)
		})
		hosts = hosts[:maxHosts]
	}
	sum.Hosts = make([]dynclient.HostSummary, 0, len(hosts))
	for _, h := range hosts {
		hs := dynclient.HostSummary{ID: h.ID.String(), Hostname: h.Info.Hostname, IDC: h.Info.IDC,
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
		sum.Hosts = append(sum.Hosts, hs)
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
