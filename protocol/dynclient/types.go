package dynclient

// The manager's dynconfig answers as nodes and schedulers decode them
// (manager/dynconfig builds them; its types are aliases of these).

// Instance is a scheduler or seed peer.
type Instance struct {
	ID       string   `json:"id"` // libp2p peer ID
	Hostname string   `json:"hostname"`
	IP       string   `json:"ip"`
	Addrs    []string `json:"addrs,omitempty"` // multiaddrs
	IDC      string   `json:"idc,omitempty"`
	Location string   `json:"location,omitempty"`
}

// ClusterConfig is one scheduler cluster in an answer.
type ClusterConfig struct {
	Name       string         `json:"name"`
	Schedulers []Instance     `json:"schedulers"`
	SeedPeers  []Instance     `json:"seed_peers"`
	Config     map[string]any `json:"config"`
}

// NodeConfig is the answer to a node: the clusters serving it, best first.
type NodeConfig struct {
	Version  string          `json:"version"`
	Clusters []ClusterConfig `json:"clusters"`
}

// Application is an application priority rule.
type Application struct {
	Name        string   `json:"name"`
	URLPatterns []string `json:"url_patterns"`
	Priority    int      `json:"priority"`
}

// SchedulerConfig is the answer to a scheduler.
type SchedulerConfig struct {
	Version      string        `json:"version"`
	Cluster      ClusterConfig `json:"cluster"`
	Applications []Application `json:"applications"`
}

// NodeVersion and SchedulerVersion extract the version for Follow.
func NodeVersion(c NodeConfig) string { return c.Version }

// SchedulerVersion extracts a scheduler answer's version.
func SchedulerVersion(c SchedulerConfig) string { return c.Version }
