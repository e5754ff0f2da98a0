package protocol

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dragonfly-p2p/df/protocol/pb"
)

// Schedule protocol limits.
const (
	MaxScheduleRequestSize  = 256 << 10 // PeerRegister carries a bitmap of up to MaxPieces bits
	MaxScheduleResponseSize = 64 << 10
	MaxProbeSize            = 128
	// MaxUploadBPS bounds announced bandwidths (400 Gbit/s).
	MaxUploadBPS     = 400_000_000_000
	MaxInFlight      = 1_000_000
	MaxAddrs         = 16
	MaxAddrLength    = 256
	MaxCandidates    = 16
	MaxProbeTargets  = 32
	MaxProbeResults  = 64
	MaxBlocklist     = 64
	MaxLocationParts = 5
	MaxPriority      = 6
)

// HostInfo is a validated pb.HostAnnounce.
type HostInfo struct {
	Hostname       string
	Location       []string // up to 5 parts
	IDC            string
	Seed           bool
	UploadCapacity uint64 // bits per second, 0 unknown
	UploadRate     uint64
	InFlight       uint32
	MaxUploads     uint32
	Addrs          []ma.Multiaddr
}

func checkText(what, s string, max int) error {
	if len(s) > max || !utf8.ValidString(s) {
		return badf("%s longer than %d bytes or not UTF-8", what, max)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return badf("%s contains a control character", what)
		}
	}
	return nil
}

// ParseAddrs validates a list of binary multiaddrs.
func ParseAddrs(raw [][]byte) ([]ma.Multiaddr, error) {
	if len(raw) > MaxAddrs {
		return nil, badf("%d addresses, limit %d", len(raw), MaxAddrs)
	}
	out := make([]ma.Multiaddr, 0, len(raw))
	for _, b := range raw {
		if len(b) > MaxAddrLength {
			return nil, badf("address of %d bytes", len(b))
		}
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return nil, badf("address: %v", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// ParseHostAnnounce validates a host announcement.
func ParseHostAnnounce(m *pb.HostAnnounce) (HostInfo, error) {
	h := HostInfo{Hostname: m.GetHostname(), IDC: m.GetIdc(), Seed: m.GetType() == pb.HostType_HOST_TYPE_SEED,
		UploadCapacity: m.GetUploadCapacityBps(), UploadRate: m.GetUploadRateBps(),
		InFlight: m.GetUploadsInFlight(), MaxUploads: m.GetMaxUploads()}
	if err := checkText("hostname", h.Hostname, 253); err != nil {
		return h, err
	}
	if err := checkText("idc", h.IDC, 128); err != nil {
		return h, err
	}
	if err := checkText("location", m.GetLocation(), 256); err != nil {
		return h, err
	}
	if loc := m.GetLocation(); loc != "" {
		h.Location = strings.Split(loc, "|")
		if len(h.Location) > MaxLocationParts {
			return h, badf("location has %d parts, limit %d", len(h.Location), MaxLocationParts)
		}
	}
	switch m.GetType() {
	case pb.HostType_HOST_TYPE_NORMAL, pb.HostType_HOST_TYPE_SEED:
	default:
		return h, badf("unknown host type %d", m.GetType())
	}
	if h.UploadCapacity > MaxUploadBPS || h.UploadRate > MaxUploadBPS {
		return h, badf("bandwidth beyond %d bit/s", uint64(MaxUploadBPS))
	}
	if h.InFlight > MaxInFlight || h.MaxUploads > MaxInFlight {
		return h, badf("upload counts beyond %d", MaxInFlight)
	}
	addrs, err := ParseAddrs(m.GetAddrs())
	if err != nil {
		return h, err
	}
	h.Addrs = addrs
	return h, nil
}

// Registration is a validated pb.PeerRegister.
type Registration struct {
	Task        TaskID
	Kind        pb.TaskKind
	URL         string
	Length      int64 // -1 unknown
	PieceLength uint32
	Priority    uint32 // 1..6 (0 normalised to 6)
	BackSource  bool
	Held        []bool // nil when the node holds nothing
	Tag         string
	Application string
}

// ParsePeerRegister validates a registration.
func ParsePeerRegister(m *pb.PeerRegister) (Registration, error) {
	r := Registration{Kind: m.GetKind(), URL: m.GetUrl(), Length: -1, PieceLength: m.GetPieceLength(),
		Priority: m.GetPriority(), BackSource: m.GetNeedBackToSource(), Tag: m.GetTag(), Application: m.GetApplication()}
	id, err := TaskIDFromMultihash(m.GetTaskId())
	if err != nil {
		return r, err
	}
	r.Task = id
	switch r.Kind {
	case pb.TaskKind_TASK_KIND_CONTENT, pb.TaskKind_TASK_KIND_URL, pb.TaskKind_TASK_KIND_NAMED:
	default:
		return r, badf("unknown task kind %d", r.Kind)
	}
	if r.URL != "" {
		if _, err := CanonicalURL(r.URL, nil); err != nil {
			return r, badf("url: %v", err)
		}
	}
	if err := checkText("tag", r.Tag, MaxLabelLength); err != nil {
		return r, err
	}
	if err := checkText("application", r.Application, MaxLabelLength); err != nil {
		return r, err
	}
	if r.Priority > MaxPriority {
		return r, badf("priority %d beyond LEVEL%d", r.Priority, MaxPriority)
	}
	if r.Priority == 0 {
		r.Priority = MaxPriority
	}
	if m.GetKnownLength() {
		if m.GetContentLength() > uint64(MaxContentLength) {
			return r, badf("content length %d beyond the limit", m.GetContentLength())
		}
		r.Length = int64(m.GetContentLength())
	}
	if r.PieceLength != 0 {
		if err := CheckPieceLength(r.PieceLength); err != nil {
			return r, badf("%v", err)
		}
	}
	if held := m.GetHeld(); len(held) > 0 {
		if r.Length < 0 || r.PieceLength == 0 {
			return r, badf("held pieces without a layout")
		}
		l, err := NewLayout(r.Length, r.PieceLength)
		if err != nil {
			return r, badf("%v", err)
		}
		want := (int(l.PieceCount()) + 7) / 8
		if len(held) != want {
			return r, badf("held bitmap of %d bytes, want %d", len(held), want)
		}
		r.Held = make([]bool, l.PieceCount())
		for i := range r.Held {
			r.Held[i] = held[i/8]&(1<<(i%8)) != 0
		}
	}
	return r, nil
}

// Bitmap encodes held pieces for PeerRegister.held.
func Bitmap(held []bool) []byte {
	b := make([]byte, (len(held)+7)/8)
	for i, h := range held {
		if h {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return b
}

// PieceReport is a validated pb.PieceResult.
type PieceReport struct {
	Number    uint32
	Parent    peer.ID // "" for the origin
	Success   bool
	Cost      time.Duration
	Digest    Digest
	Temporary bool
}

// ParsePieceResult validates a piece report against the piece count.
func ParsePieceResult(m *pb.PieceResult, pieceCount uint32) (PieceReport, error) {
	r := PieceReport{Number: m.GetNumber(), Success: m.GetSuccess(), Temporary: m.GetTemporary(),
		Cost: time.Duration(m.GetCostMs()) * time.Millisecond}
	if r.Number >= pieceCount {
		return r, badf("piece %d ≥ piece count %d", r.Number, pieceCount)
	}
	if m.GetCostMs() > uint32((24 * time.Hour).Milliseconds()) {
		return r, badf("piece cost of %d ms", m.GetCostMs())
	}
	if len(m.GetParent()) > 0 {
		p, err := peer.IDFromBytes(m.GetParent())
		if err != nil {
			return r, badf("parent: %v", err)
		}
		r.Parent = p
	}
	if r.Success {
		d, err := DigestFromBytes(m.GetDigest())
		if err != nil {
			return r, badf("digest: %v", err)
		}
		r.Digest = d
	}
	return r, nil
}

// ParsePeerIDs validates a list of binary peer IDs (blocklists, probes).
func ParsePeerIDs(raw [][]byte, max int) ([]peer.ID, error) {
	if len(raw) > max {
		return nil, badf("%d peer IDs, limit %d", len(raw), max)
	}
	out := make([]peer.ID, 0, len(raw))
	for _, b := range raw {
		p, err := peer.IDFromBytes(b)
		if err != nil {
			return nil, badf("peer ID: %v", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Candidate is a validated parent suggestion.
type Candidate struct {
	Peer   peer.AddrInfo
	Weight uint32
	IDC    string
	RTT    time.Duration
}

// ParseCandidates validates a scheduler's parent suggestions.
func ParseCandidates(cs []*pb.Candidate, max int) ([]Candidate, error) {
	if len(cs) > max {
		return nil, badf("%d candidates, limit %d", len(cs), max)
	}
	out := make([]Candidate, 0, len(cs))
	for _, c := range cs {
		p, err := peer.IDFromBytes(c.GetPeer())
		if err != nil {
			return nil, badf("candidate: %v", err)
		}
		addrs, err := ParseAddrs(c.GetAddrs())
		if err != nil {
			return nil, err
		}
		if c.GetWeight() > 1000 {
			return nil, badf("candidate weight %d", c.GetWeight())
		}
		if err := checkText("idc", c.GetIdc(), 128); err != nil {
			return nil, err
		}
		out = append(out, Candidate{Peer: peer.AddrInfo{ID: p, Addrs: addrs}, Weight: c.GetWeight(), IDC: c.GetIdc(),
			RTT: time.Duration(min(c.GetRttUs(), 60_000_000)) * time.Microsecond})
	}
	return out, nil
}
