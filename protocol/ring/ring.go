// Package ring is the consistent-hash ring that maps each task to the
// scheduler that owns it. Every node and scheduler builds the same ring from
// the same member list, so they agree on owners without talking; when an
// owner is unavailable, the next distinct member clockwise takes over, and
// only the tasks of a departed member move.
package ring

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
)

// DefaultVirtualNodes spreads each member over this many ring points.
const DefaultVirtualNodes = 128

type point struct {
	hash   uint64
	member peer.ID
}

// Ring is immutable; build a new one when membership changes.
type Ring struct {
	points  []point
	members []peer.ID
}

// New builds a ring over members (duplicates ignored) with vnodes points
// each (≤ 0: DefaultVirtualNodes).
func New(members []peer.ID, vnodes int) *Ring {
	if vnodes <= 0 {
		vnodes = DefaultVirtualNodes
	}
	uniq := slices.Clone(members)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	r := &Ring{members: uniq, points: make([]point, 0, len(uniq)*vnodes)}
	var buf [4]byte
	for _, m := range uniq {
		for v := range vnodes {
			binary.BigEndian.PutUint32(buf[:], uint32(v))
			h := sha256.New()
			h.Write([]byte("dragonfly/ring/v1"))
			h.Write([]byte(m))
			h.Write(buf[:])
			var sum [32]byte
			r.points = append(r.points, point{binary.BigEndian.Uint64(h.Sum(sum[:0])), m})
		}
	}
	sort.Slice(r.points, func(i, j int) bool {
		if r.points[i].hash != r.points[j].hash {
			return r.points[i].hash < r.points[j].hash
		}
		return r.points[i].member < r.points[j].member
	})
	return r
}

// Members returns the ring's members, sorted.
func (r *Ring) Members() []peer.ID { return slices.Clone(r.members) }

// Len is the number of members.
func (r *Ring) Len() int { return len(r.members) }

// Owners returns up to n distinct members for id in preference order: the
// owner first, then who takes over if it fails.
func (r *Ring) Owners(id protocol.TaskID, n int) []peer.ID {
	if len(r.points) == 0 || n <= 0 {
		return nil
	}
	key := binary.BigEndian.Uint64(id[:8])
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i].hash >= key })
	out := make([]peer.ID, 0, min(n, len(r.members)))
	for k := 0; k < len(r.points) && len(out) < n; k++ {
		m := r.points[(i+k)%len(r.points)].member
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// Owner returns the member owning id ("" on an empty ring).
func (r *Ring) Owner(id protocol.TaskID) peer.ID {
	o := r.Owners(id, 1)
	if len(o) == 0 {
		return ""
	}
	return o[0]
}
