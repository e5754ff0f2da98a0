package dynclient

import "time"

// Bounds of a scheduler's keepalive summary; the manager refuses a
// summary that exceeds any of them.
const (
	MaxSummaryHosts   = 1000 // hosts listed per keepalive
	MaxSummaryLocPart = 5    // location parts per host
)

// SchedulerSummary is what a scheduler reports about its swarm with each
// keepalive: cumulative traffic counters (since the scheduler started;
// they reset when it restarts), how much it tracks, and a bounded list of
// the hosts it knows (HostsTruncated is set when there were more).
type SchedulerSummary struct {
	// Started identifies the counters' epoch: a different value means the
	// scheduler restarted and the counters began again at zero.
	Started        time.Time     `json:"started"`
	PeerBytes      uint64        `json:"peer_bytes"`
	SourceBytes    uint64        `json:"source_bytes"`
	HostCount      int           `json:"host_count"`
	TaskCount      int           `json:"task_count"`
	PeerCount      int           `json:"peer_count"`
	HostsTruncated bool          `json:"hosts_truncated"`
	Hosts          []HostSummary `json:"hosts"`
}

// HostSummary is one dfnode host as its scheduler sees it.
type HostSummary struct {
	ID             string    `json:"id"` // libp2p peer ID
	Hostname       string    `json:"hostname"`
	IDC            string    `json:"idc"`
	Location       []string  `json:"location"`
	Type           string    `json:"type"`            // "seed" or "normal"
	UploadCapacity uint64    `json:"upload_capacity"` // bit/s, 0 unknown
	UploadRate     uint64    `json:"upload_rate"`     // bit/s
	InFlight       uint32    `json:"in_flight"`       // uploads in progress
	MaxUploads     uint32    `json:"max_uploads"`     // 0 unbounded
	Tasks          int       `json:"tasks"`           // tasks it holds or downloads
	TasksDone      int       `json:"tasks_done"`      // of which complete (cached)
	LastSeen       time.Time `json:"last_seen"`
}

// Host types in HostSummary.Type.
const (
	HostTypeSeed   = "seed"
	HostTypeNormal = "normal"
)
