package disk

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// recordVersion is the schema version of a task record.
const recordVersion = 1

// maxRecordSize bounds a record read from bbolt or a sidecar.
const maxRecordSize = 64 << 10

// errBadRecord marks an undecodable task record.
var errBadRecord = errors.New("bad task record")

// diskRecord is a task's metadata as stored in bbolt and, identically, in
// its JSON sidecar. Access times are kept apart (they change on every read).
type diskRecord struct {
	Version       int            `json:"version"`
	ID            string         `json:"id"`
	Kind          string         `json:"kind"`
	ContentLength int64          `json:"content_length"`
	PieceLength   uint32         `json:"piece_length"`
	ContentDigest string         `json:"content_digest,omitempty"`
	Origin        storage.Origin `json:"origin,omitzero"`
	Complete      bool           `json:"complete"`
	CreatedAt     time.Time      `json:"created_at"`
	CompletedAt   time.Time      `json:"completed_at,omitzero"`
}

// encodeRecord serialises the persistent part of info.
func encodeRecord(info storage.TaskInfo) ([]byte, error) {
	r := diskRecord{
		Version:       recordVersion,
		ID:            info.ID.String(),
		Kind:          info.Kind.String(),
		ContentLength: info.Layout.ContentLength,
		PieceLength:   info.Layout.PieceLength,
		Origin:        info.Origin,
		Complete:      info.Complete,
		CreatedAt:     info.CreatedAt.UTC(),
		CompletedAt:   info.CompletedAt.UTC(),
	}
	if !info.ContentDigest.IsZero() {
		r.ContentDigest = info.ContentDigest.String()
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode record of %s: %w", info.ID.Short(), err)
	}
	return b, nil
}

// decodeRecord parses and validates a record; want, if non-zero, must be
// the ID it names. VerifiedPieces and AccessedAt are left zero.
func decodeRecord(b []byte, want protocol.TaskID) (storage.TaskInfo, error) {
	var info storage.TaskInfo
	if len(b) > maxRecordSize {
		return info, fmt.Errorf("%w: %d bytes", errBadRecord, len(b))
	}
	var r diskRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return info, fmt.Errorf("%w: %w", errBadRecord, err)
	}
	if r.Version != recordVersion {
		return info, fmt.Errorf("%w: version %d", errBadRecord, r.Version)
	}
	id, err := protocol.ParseTaskID(r.ID)
	if err != nil {
		return info, fmt.Errorf("%w: %w", errBadRecord, err)
	}
	if want != (protocol.TaskID{}) && id != want {
		return info, fmt.Errorf("%w: names task %s, stored as %s", errBadRecord, id.Short(), want.Short())
	}
	kind, err := parseKind(r.Kind)
	if err != nil {
		return info, err
	}
	layout, err := protocol.NewLayout(r.ContentLength, r.PieceLength)
	if err != nil || layout.PieceLength != r.PieceLength {
		return info, fmt.Errorf("%w: layout %d/%d: %v", errBadRecord, r.ContentLength, r.PieceLength, err)
	}
	var digest protocol.Digest
	if r.ContentDigest != "" {
		if digest, err = protocol.ParseDigest(r.ContentDigest); err != nil {
			return info, fmt.Errorf("%w: %w", errBadRecord, err)
		}
	}
	if kind == storage.KindContent && digest != protocol.Digest(id) {
		return info, fmt.Errorf("%w: content task digest differs from its ID", errBadRecord)
	}
	if r.Complete && digest.IsZero() {
		return info, fmt.Errorf("%w: complete without a digest", errBadRecord)
	}
	return storage.TaskInfo{
		ID:            id,
		Kind:          kind,
		Layout:        layout,
		ContentDigest: digest,
		Origin:        r.Origin,
		Complete:      r.Complete,
		CreatedAt:     r.CreatedAt,
		CompletedAt:   r.CompletedAt,
	}, nil
}

func parseKind(s string) (storage.Kind, error) {
	for _, k := range []storage.Kind{storage.KindContent, storage.KindURL, storage.KindNamed} {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: kind %q", errBadRecord, s)
}
