package shape

import (
	"net"
	"sync"
	"sync/atomic"
)

// Fabric is the network between groups of hosts (data centres, IDCs):
// traffic between two hosts of the same group passes only their own links;
// traffic to another group also passes that ordered pair's shared link (one
// bucket per direction, shared by every host of the sending group, with the
// same bounded queue as a host's uplink). The fabric counts the bytes sent
// from each group to each group.
//
// A Link joins a group with Join before its socket is opened; ListenUDP
// then registers the socket's address, which is how a sender tells which
// group a destination belongs to. Destinations the fabric does not know
// (an origin, an unshaped scheduler) are neither constrained nor counted.
type Fabric struct {
	groups int
	inter  []*Bucket      // [from*groups+to]
	bytes  []atomic.Int64 // [from*groups+to]
	addrs  sync.Map       // addr.String() → group
	drops  []atomic.Int64 // [from*groups+to] packets dropped by the shared link's queue
	cut    []atomic.Bool  // [from*groups+to] partitioned: every packet is dropped
}

// NewFabric returns a fabric of groups groups whose links between two
// groups carry interRate bytes per second in each direction (0: unlimited,
// still counted).
func NewFabric(groups int, interRate int64) *Fabric {
	groups = max(groups, 1)
	f := &Fabric{groups: groups, inter: make([]*Bucket, groups*groups),
		bytes: make([]atomic.Int64, groups*groups), drops: make([]atomic.Int64, groups*groups), cut: make([]atomic.Bool, groups*groups)}
	for i := range f.inter {
		f.inter[i] = NewBucket(interRate)
	}
	return f
}

// Groups is the number of groups.
func (f *Fabric) Groups() int { return f.groups }

// Register records that addr belongs to group (done by ListenUDP for
// joined links; exported for sockets opened elsewhere).
func (f *Fabric) Register(addr net.Addr, group int) {
	if addr != nil && group >= 0 && group < f.groups {
		f.addrs.Store(addr.String(), group)
	}
}

// Group returns addr's group.
func (f *Fabric) Group(addr net.Addr) (int, bool) {
	if addr == nil {
		return 0, false
	}
	g, ok := f.addrs.Load(addr.String())
	if !ok {
		return 0, false
	}
	return g.(int), true
}

// Bytes returns the bytes sent by hosts of group from to hosts of group to
// (from == to: inside the group).
func (f *Fabric) Bytes(from, to int) int64 {
	if from < 0 || to < 0 || from >= f.groups || to >= f.groups {
		return 0
	}
	return f.bytes[from*f.groups+to].Load()
}

// Dropped returns the packets the from → to link dropped because its queue
// was full.
func (f *Fabric) Dropped(from, to int) int64 {
	if from < 0 || to < 0 || from >= f.groups || to >= f.groups {
		return 0
	}
	return f.drops[from*f.groups+to].Load()
}

// pass paces n bytes from group from to addr; false means the shared link
// dropped the packet.
func (f *Fabric) pass(from int, addr net.Addr, n int) bool {
	to, ok := f.Group(addr)
	if !ok || from < 0 || from >= f.groups {
		return true
	}
	k := from*f.groups + to
	if from != to && f.cut[k].Load() {
		f.drops[k].Add(1)
		return false
	}
	if from != to && !f.inter[k].WaitUpTo(n, uplinkQueue) {
		f.drops[k].Add(1)
		return false
	}
	f.bytes[k].Add(int64(n))
	return true
}

// Partition cuts the links between groups a and b in both directions
// (every packet between them is dropped, as a network partition does), or
// with cut false heals them.
func (f *Fabric) Partition(a, b int, cut bool) {
	if a < 0 || b < 0 || a >= f.groups || b >= f.groups || a == b {
		return
	}
	f.cut[a*f.groups+b].Store(cut)
	f.cut[b*f.groups+a].Store(cut)
}

// Join puts the link's host in group of f. Call it before ListenUDP.
func (l *Link) Join(f *Fabric, group int) {
	l.fabric.Store(&membership{f: f, group: group})
}

type membership struct {
	f     *Fabric
	group int
}
