package store

import "time"

// Role is a user's role. Roles are ordered: root > admin > guest.
type Role string

// Roles.
const (
	RoleRoot  Role = "root"
	RoleAdmin Role = "admin"
	RoleGuest Role = "guest"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleRoot || r == RoleAdmin || r == RoleGuest }

// AtLeast reports whether r grants at least the rights of min.
func (r Role) AtLeast(min Role) bool { return r.rank() >= min.rank() }

func (r Role) rank() int {
	switch r {
	case RoleRoot:
		return 3
	case RoleAdmin:
		return 2
	case RoleGuest:
		return 1
	}
	return 0
}

// User is a console/API account. PasswordHash is a bcrypt hash.
type User struct {
	Name         string    `json:"name"`
	Role         Role      `json:"role"`
	PasswordHash []byte    `json:"password_hash"`
	Disabled     bool      `json:"disabled,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Token is a personal access token. Only the SHA-256 of the secret is stored.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	User      string    `json:"user"`
	Hash      []byte    `json:"hash"`
	Scopes    []string  `json:"scopes"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used,omitempty"`
}

// Scopes decide which hosts a scheduler cluster serves.
type Scopes struct {
	IDCs             []string `json:"idcs,omitempty"`
	Location         string   `json:"location,omitempty"` // prefix, "|"-separated
	CIDRs            []string `json:"cidrs,omitempty"`
	HostnamePatterns []string `json:"hostname_patterns,omitempty"` // regular expressions
}

// Cluster is a scheduler cluster.
type Cluster struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Scopes      Scopes         `json:"scopes"`
	Default     bool           `json:"default,omitempty"`
	Config      map[string]any `json:"config,omitempty"` // node config: rate limits, registries, GC
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
}

// Instance states.
const (
	StateActive   = "active"
	StateInactive = "inactive"
)

// Instance is a scheduler or seed peer registered by keepalive.
type Instance struct {
	ID        string    `json:"id"` // libp2p peer ID
	Cluster   string    `json:"cluster"`
	Hostname  string    `json:"hostname"`
	IP        string    `json:"ip"`
	Addrs     []string  `json:"addrs,omitempty"` // multiaddrs
	IDC       string    `json:"idc,omitempty"`
	Location  string    `json:"location,omitempty"`
	LastSeen  time.Time `json:"last_seen"`
	CreatedAt time.Time `json:"created_at"`
	State     string    `json:"state"` // derived from LastSeen on read
}

// Application is a priority rule for URLs.
type Application struct {
	Name        string    `json:"name"`
	URLPatterns []string  `json:"url_patterns"` // regular expressions
	Priority    int       `json:"priority"`     // 0..6 as Dragonfly's LEVEL0..6
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Job types.
const (
	JobPreheat    = "preheat"
	JobDeleteTask = "delete_task"
	JobGetTask    = "get_task"
)

// Job states.
const (
	JobPending   = "pending"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
)

// Job is a durable unit of work.
type Job struct {
	ID        uint64         `json:"id"`
	Type      string         `json:"type"`
	State     string         `json:"state"`
	Args      []byte         `json:"args"` // JSON, type-specific
	Clusters  []string       `json:"clusters,omitempty"`
	Progress  []BlobProgress `json:"progress,omitempty"`
	Result    []byte         `json:"result,omitempty"` // JSON, type-specific
	Error     string         `json:"error,omitempty"`
	Attempts  int            `json:"attempts"`
	CreatedBy string         `json:"created_by"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// BlobProgress is the progress of one URL/blob of a job.
type BlobProgress struct {
	Cluster string `json:"cluster,omitempty"`
	URL     string `json:"url"`
	Digest  string `json:"digest,omitempty"`
	Size    int64  `json:"size,omitempty"`
	Done    int64  `json:"done"`
	State   string `json:"state"`
	Error   string `json:"error,omitempty"`
}

// ConfigDoc is one version of a named config document.
type ConfigDoc struct {
	Name      string         `json:"name"`
	Version   uint64         `json:"version"`
	Data      map[string]any `json:"data"`
	Author    string         `json:"author"`
	CreatedAt time.Time      `json:"created_at"`
}

// AuditEntry is one security-relevant action.
type AuditEntry struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Remote string    `json:"remote,omitempty"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail,omitempty"`
}
