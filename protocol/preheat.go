package protocol

import (
	"net/http"
	"strings"

	"github.com/dragonfly-p2p/df/protocol/pb"
)

// Preheat protocol limits.
const (
	// MaxPreheatRequestSize bounds a PreheatRequest frame (URL, headers, labels).
	MaxPreheatRequestSize = 48 << 10
	// MaxPreheatProgressSize bounds a PreheatProgress frame.
	MaxPreheatProgressSize = 8 << 10
	// MaxPreheatHeaders bounds the origin headers of one request.
	MaxPreheatHeaders = 32
	// MaxPreheatHeaderBytes bounds the names and values of all headers together.
	MaxPreheatHeaderBytes = 16 << 10
	// MaxPreheatPeers bounds the peer IDs listed in a stat answer.
	MaxPreheatPeers = 32
)

// PreheatRequest is a validated pb.PreheatRequest.
type PreheatRequest struct {
	Op  pb.PreheatOp
	URL string // empty only for content-task stat/delete
	// Digest is set for content tasks (the task ID is the digest).
	Digest           Digest
	HasDigest        bool
	Header           http.Header // origin only
	Tag, Application string
	// TaskID is derived from the digest or from (URL, tag, application).
	TaskID TaskID
}

// hopHeaders are connection-level headers a preheat may not set; Host is
// decided by the URL.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Transfer-Encoding": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Host": true, "Content-Length": true,
	"Proxy-Authorization": true, "Range": true, "If-Range": true,
}

func validHeaderName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ParsePreheatRequest validates a preheat request: a known operation, an
// http(s) URL of bounded length (required for OP_PREHEAT), a digest in the
// one accepted form, at most MaxPreheatHeaders well-formed headers of at
// most MaxPreheatHeaderBytes in total (connection-level headers refused),
// and bounded labels. It derives the task ID the way dfget does.
func ParsePreheatRequest(m *pb.PreheatRequest) (PreheatRequest, error) {
	r := PreheatRequest{Op: m.GetOp(), URL: m.GetUrl(), Tag: m.GetTag(), Application: m.GetApplication()}
	switch r.Op {
	case pb.PreheatOp_PREHEAT_OP_PREHEAT, pb.PreheatOp_PREHEAT_OP_STAT, pb.PreheatOp_PREHEAT_OP_DELETE:
	default:
		return r, badf("unknown preheat operation %d", r.Op)
	}
	if err := checkText("tag", r.Tag, MaxLabelLength); err != nil {
		return r, err
	}
	if err := checkText("application", r.Application, MaxLabelLength); err != nil {
		return r, err
	}
	if d := m.GetDigest(); d != "" {
		dg, err := ParseDigest(d)
		if err != nil {
			return r, badf("digest: %v", err)
		}
		r.Digest, r.HasDigest, r.TaskID = dg, true, ContentTaskID(dg)
	}
	if r.URL == "" {
		if r.Op == pb.PreheatOp_PREHEAT_OP_PREHEAT || !r.HasDigest {
			return r, badf("url is required")
		}
	} else {
		if err := checkText("url", r.URL, MaxURLLength); err != nil {
			return r, err
		}
		if _, err := CanonicalURL(r.URL, nil); err != nil {
			return r, badf("url: %v", err)
		}
		if !r.HasDigest {
			id, err := URLTask{URL: r.URL, Tag: r.Tag, Application: r.Application}.ID()
			if err != nil {
				return r, badf("url: %v", err)
			}
			r.TaskID = id
		}
	}
	hs := m.GetHeaders()
	if len(hs) > MaxPreheatHeaders {
		return r, badf("%d headers, limit %d", len(hs), MaxPreheatHeaders)
	}
	if len(hs) > 0 && r.Op != pb.PreheatOp_PREHEAT_OP_PREHEAT {
		return r, badf("headers are only for preheat")
	}
	total := 0
	for _, h := range hs {
		total += len(h.GetName()) + len(h.GetValue())
		if total > MaxPreheatHeaderBytes {
			return r, badf("headers larger than %d bytes", MaxPreheatHeaderBytes)
		}
		if !validHeaderName(h.GetName()) || !validHeaderValue(h.GetValue()) {
			return r, badf("malformed header")
		}
		name := http.CanonicalHeaderKey(h.GetName())
		if hopHeaders[name] {
			return r, badf("header %s may not be set", name)
		}
		if r.Header == nil {
			r.Header = http.Header{}
		}
		r.Header.Add(name, h.GetValue())
	}
	return r, nil
}

// PreheatProgress is a validated pb.PreheatProgress.
type PreheatProgress struct {
	State         pb.PreheatState
	TaskID        TaskID
	HasTaskID     bool
	BytesDone     int64
	Total         int64
	Error         string
	Local         bool
	CompletePeers uint32
	Peers         []string
}

// Final reports whether p ends the stream.
func (p PreheatProgress) Final() bool {
	return p.State == pb.PreheatState_PREHEAT_STATE_SUCCEEDED || p.State == pb.PreheatState_PREHEAT_STATE_FAILED
}

// ParsePreheatProgress validates a progress frame: a known state, byte
// counts within the content limit (done ≤ total when total is known), a
// bounded error text and a bounded list of peer IDs.
func ParsePreheatProgress(m *pb.PreheatProgress) (PreheatProgress, error) {
	p := PreheatProgress{State: m.GetState(), Error: m.GetError(), Local: m.GetLocal(), CompletePeers: m.GetCompletePeers()}
	if _, ok := pb.PreheatState_name[int32(p.State)]; !ok || p.State == pb.PreheatState_PREHEAT_STATE_UNSPECIFIED {
		return p, badf("unknown preheat state %d", p.State)
	}
	if err := checkMessage(p.Error); err != nil {
		return p, err
	}
	if m.GetTotal() > uint64(MaxContentLength) || m.GetBytesDone() > uint64(MaxContentLength) {
		return p, badf("byte counts beyond the content limit")
	}
	p.BytesDone, p.Total = int64(m.GetBytesDone()), int64(m.GetTotal())
	if p.Total > 0 && p.BytesDone > p.Total {
		return p, badf("%d bytes done of %d", p.BytesDone, p.Total)
	}
	if len(m.GetTaskId()) > 0 {
		id, err := TaskIDFromMultihash(m.GetTaskId())
		if err != nil {
			return p, err
		}
		p.TaskID, p.HasTaskID = id, true
	}
	if len(m.GetPeers()) > MaxPreheatPeers {
		return p, badf("%d peers, limit %d", len(m.GetPeers()), MaxPreheatPeers)
	}
	for _, s := range m.GetPeers() {
		if err := checkText("peer", s, 128); err != nil {
			return p, err
		}
		p.Peers = append(p.Peers, s)
	}
	return p, nil
}
