package protocol

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/dragonfly-p2p/df/protocol/pb"
)

// ErrBadMessage is returned by the Parse functions for a message that
// decoded but breaks the protocol's rules (a field out of range, a digest of
// the wrong size, an unknown status).
var ErrBadMessage = errors.New("bad message")

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadMessage}, args...)...)
}

// CheckMessage validates a human-readable message field (length, UTF-8).
func CheckMessage(s string) error { return checkMessage(s) }

func checkMessage(s string) error {
	if len(s) > MaxMessageLength || !utf8.ValidString(s) {
		return badf("message field longer than %d bytes or not UTF-8", MaxMessageLength)
	}
	return nil
}

func checkStatus(s pb.Status) error {
	if _, ok := pb.Status_name[int32(s)]; !ok || s == pb.Status_STATUS_UNSPECIFIED {
		return badf("unknown status %d", s)
	}
	return nil
}

// ParsePieceRequest validates a piece request.
func ParsePieceRequest(m *pb.PieceRequest) (TaskID, uint32, error) {
	id, err := TaskIDFromMultihash(m.GetTaskId())
	if err != nil {
		return TaskID{}, 0, err
	}
	if m.GetNumber() >= MaxPieces {
		return TaskID{}, 0, badf("piece number %d ≥ %d", m.GetNumber(), MaxPieces)
	}
	return id, m.GetNumber(), nil
}

// PieceHeader is a validated pb.PieceResponse.
type PieceHeader struct {
	Status  pb.Status
	Number  uint32
	Offset  int64
	Length  uint32
	Digest  Digest
	Message string
}

// ParsePieceResponse validates a piece response header. For STATUS_OK the
// length and digest are checked; the caller still checks them against the
// task's layout and its trusted digest before reading the payload.
func ParsePieceResponse(m *pb.PieceResponse) (PieceHeader, error) {
	h := PieceHeader{Status: m.GetStatus(), Number: m.GetNumber(), Message: m.GetMessage()}
	if err := checkStatus(h.Status); err != nil {
		return h, err
	}
	if err := checkMessage(h.Message); err != nil {
		return h, err
	}
	if h.Status != pb.Status_STATUS_OK {
		return h, nil
	}
	if m.GetOffset() > uint64(MaxContentLength) {
		return h, badf("offset %d beyond the content limit", m.GetOffset())
	}
	if m.GetLength() == 0 || m.GetLength() > MaxPieceLength {
		return h, badf("piece length %d outside [1, %d]", m.GetLength(), MaxPieceLength)
	}
	d, err := DigestFromBytes(m.GetDigest())
	if err != nil {
		return h, badf("piece digest: %v", err)
	}
	h.Offset, h.Length, h.Digest = int64(m.GetOffset()), m.GetLength(), d
	return h, nil
}

// ParseSyncRequest validates a pieces-sync request.
func ParseSyncRequest(m *pb.SyncRequest) (TaskID, error) {
	return TaskIDFromMultihash(m.GetTaskId())
}

// SyncHeader is a validated pb.SyncHeader.
type SyncHeader struct {
	Status pb.Status
	Layout Layout
	// ContentDigest is zero when the responder does not know it yet.
	ContentDigest Digest
	Complete      bool
	Message       string
	// OriginValidator is the ETag or Last-Modified of a URL task's copy.
	OriginValidator string
}

// ParseSyncHeader validates a pieces-sync header; for STATUS_OK the layout
// must be within limits and the piece length explicit.
func ParseSyncHeader(m *pb.SyncHeader) (SyncHeader, error) {
	h := SyncHeader{Status: m.GetStatus(), Complete: m.GetComplete(), Message: m.GetMessage(), OriginValidator: m.GetOriginValidator()}
	if err := checkStatus(h.Status); err != nil {
		return h, err
	}
	if err := checkMessage(h.Message); err != nil {
		return h, err
	}
	if err := checkMessage(h.OriginValidator); err != nil {
		return h, err
	}
	if h.Status != pb.Status_STATUS_OK {
		return h, nil
	}
	if m.GetContentLength() > uint64(MaxContentLength) || m.GetPieceLength() == 0 {
		return h, badf("layout %d/%d out of range", m.GetContentLength(), m.GetPieceLength())
	}
	l, err := NewLayout(int64(m.GetContentLength()), m.GetPieceLength())
	if err != nil {
		return h, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	h.Layout = l
	if len(m.GetContentDigest()) > 0 {
		if h.ContentDigest, err = DigestFromBytes(m.GetContentDigest()); err != nil {
			return h, badf("content digest: %v", err)
		}
	}
	return h, nil
}

// PieceInfo is one verified piece a peer holds.
type PieceInfo struct {
	Number uint32
	Digest Digest
}

// ParsePieceSet validates a list of held pieces against the piece count.
func ParsePieceSet(m *pb.PieceSet, pieceCount uint32) ([]PieceInfo, error) {
	ps := m.GetPieces()
	if len(ps) > MaxSyncPieces {
		return nil, badf("%d pieces in one set, limit %d", len(ps), MaxSyncPieces)
	}
	out := make([]PieceInfo, 0, len(ps))
	for _, p := range ps {
		if p.GetNumber() >= pieceCount {
			return nil, badf("piece %d ≥ piece count %d", p.GetNumber(), pieceCount)
		}
		d, err := DigestFromBytes(p.GetDigest())
		if err != nil {
			return nil, badf("piece %d digest: %v", p.GetNumber(), err)
		}
		out = append(out, PieceInfo{Number: p.GetNumber(), Digest: d})
	}
	return out, nil
}

// ParseSyncEnd validates the final pieces-sync message.
func ParseSyncEnd(m *pb.SyncEnd) (pb.Status, string, error) {
	if err := checkStatus(m.GetStatus()); err != nil {
		return 0, "", err
	}
	if err := checkMessage(m.GetMessage()); err != nil {
		return 0, "", err
	}
	return m.GetStatus(), m.GetMessage(), nil
}

// MemberNonceSize and MemberMACSize are the sizes of the admission fields.
const (
	MemberNonceSize = 32
	MemberMACSize   = 32
)

// ParseMemberChallenge validates an admission challenge.
func ParseMemberChallenge(m *pb.MemberChallenge) ([]byte, error) {
	if len(m.GetNonce()) != MemberNonceSize {
		return nil, badf("nonce of %d bytes, want %d", len(m.GetNonce()), MemberNonceSize)
	}
	return m.GetNonce(), nil
}

// ParseMemberProof validates an admission proof.
func ParseMemberProof(m *pb.MemberProof) ([]byte, error) {
	if len(m.GetMac()) != MemberMACSize {
		return nil, badf("mac of %d bytes, want %d", len(m.GetMac()), MemberMACSize)
	}
	return m.GetMac(), nil
}

// ParseProviderEvent validates a provider event.
func ParseProviderEvent(m *pb.ProviderEvent) (pb.ProviderEvent_Kind, []TaskID, error) {
	switch m.GetKind() {
	case pb.ProviderEvent_KIND_WITHDRAW, pb.ProviderEvent_KIND_PROVIDE, pb.ProviderEvent_KIND_LEAVE:
	default:
		return 0, nil, badf("unknown provider event kind %d", m.GetKind())
	}
	if len(m.GetTaskIds()) > MaxProviderEventTasks {
		return 0, nil, badf("%d task IDs in one event, limit %d", len(m.GetTaskIds()), MaxProviderEventTasks)
	}
	ids := make([]TaskID, 0, len(m.GetTaskIds()))
	for _, b := range m.GetTaskIds() {
		id, err := TaskIDFromMultihash(b)
		if err != nil {
			return 0, nil, err
		}
		ids = append(ids, id)
	}
	return m.GetKind(), ids, nil
}
