// Package api is the dfnode local API: HTTP/JSON over a Unix socket (mode
// 0600, peer credentials checked) used by dfget, dfcache and dfnode's own
// subcommands. The daemon never opens a path a caller names: imports arrive
// as the request body and exports leave as the response body, so files are
// read and written by the CLI with the caller's own permissions.
//
// Endpoints (all under /v1):
//
//	GET    /v1/id                      node identity and listen addresses
//	POST   /v1/tasks?kind=&name=&tag=&piece_length=   import the body
//	GET    /v1/tasks                   list local tasks
//	GET    /v1/tasks/{id}?local=true   stat a task (local, else the cluster)
//	DELETE /v1/tasks/{id}              delete the local copy, withdraw it
//	GET    /v1/tasks/{id}/content      stream a task (downloading it P2P)
//	POST   /v1/downloads               stream a URL through the cluster
//
// Streams end with the trailer X-Dragonfly-Result: "ok" only when every
// byte was verified, the whole-content digest included.
package api

import (
	"time"
)

// Header and trailer names.
const (
	HeaderTaskID        = "X-Dragonfly-Task-Id"
	HeaderContentLength = "X-Dragonfly-Content-Length"
	TrailerResult       = "X-Dragonfly-Result"
	TrailerFromPeers    = "X-Dragonfly-Bytes-From-Peers"
	TrailerFromSource   = "X-Dragonfly-Bytes-From-Source"
	TrailerDigest       = "X-Dragonfly-Content-Digest"
)

// IDInfo is the answer of GET /v1/id.
type IDInfo struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"` // full multiaddrs ending in /p2p/<peer ID>
	Seed   bool     `json:"seed"`
	// Mirror is the registry mirror's listen address ("" when off): the
	// bound one, so a mirror configured on port 0 can be found.
	Mirror string `json:"mirror,omitempty"`
}

// TaskInfo describes a task.
type TaskInfo struct {
	ID             string    `json:"id"`
	Kind           string    `json:"kind"`
	ContentLength  int64     `json:"content_length"`
	PieceLength    uint32    `json:"piece_length"`
	Pieces         uint32    `json:"pieces"`
	VerifiedPieces uint32    `json:"verified_pieces"`
	Complete       bool      `json:"complete"`
	ContentDigest  string    `json:"content_digest,omitempty"`
	URL            string    `json:"url,omitempty"`
	CreatedAt      time.Time `json:"created_at,omitzero"`
	AccessedAt     time.Time `json:"accessed_at,omitzero"`
}

// StatInfo is the answer of GET /v1/tasks/{id}.
type StatInfo struct {
	Task TaskInfo `json:"task"`
	// Local is true when this node holds the task; otherwise Task describes
	// a peer's copy and Providers counts the peers found holding it.
	Local     bool `json:"local"`
	Providers int  `json:"providers,omitempty"`
}

// DownloadRequest is the body of POST /v1/downloads.
type DownloadRequest struct {
	URL string `json:"url"`
	// Digest ("sha256:…") makes the download a content task: verified
	// against it, and shared with every other download of the same bytes.
	Digest      string `json:"digest,omitempty"`
	Tag         string `json:"tag,omitempty"`
	Application string `json:"application,omitempty"`
	// Priority is Dragonfly's LEVEL0–6 (0 unset); the scheduler uses it.
	Priority            int      `json:"priority,omitempty"`
	PieceLength         uint32   `json:"piece_length,omitempty"`
	FilteredQueryParams []string `json:"filtered_query_params,omitempty"`
	// Header is sent to the origin only, never to peers or logs.
	Header map[string][]string `json:"header,omitempty"`
	// NoBackSource forbids the origin (peers only).
	NoBackSource bool `json:"no_back_source,omitempty"`
	// RateLimit caps this download in bytes/s.
	RateLimit int64 `json:"rate_limit,omitempty"`
}

// Error codes of ErrorBody.
const (
	CodeBadRequest  = "bad_request"
	CodeNotFound    = "not_found"
	CodeConflict    = "conflict"
	CodeNoSpace     = "no_space"
	CodeUnavailable = "unavailable"
	CodeInternal    = "internal"
)

// ErrorBody is every error response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}
