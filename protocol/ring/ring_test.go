package ring

import (
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
)

func members(n int) []peer.ID {
	out := make([]peer.ID, n)
	for i := range out {
		out[i] = peer.ID(fmt.Sprintf("scheduler-%d", i))
	}
	return out
}

func task(i int) protocol.TaskID {
	return protocol.ContentTaskID(protocol.SHA256([]byte(fmt.Sprint(i))))
}

func TestSameRingEverywhere(t *testing.T) {
	a := New(members(5), 0)
	m := members(5)
	b := New([]peer.ID{m[3], m[1], m[4], m[0], m[2], m[2]}, 0) // order and duplicates do not matter
	for i := range 1000 {
		if a.Owner(task(i)) != b.Owner(task(i)) {
			t.Fatalf("task %d: owners differ", i)
		}
	}
}

func TestBalance(t *testing.T) {
	r := New(members(4), 0)
	counts := map[peer.ID]int{}
	const n = 20000
	for i := range n {
		counts[r.Owner(task(i))]++
	}
	for m, c := range counts {
		if c < n/4*7/10 || c > n/4*13/10 {
			t.Fatalf("%s owns %d of %d tasks: unbalanced %v", m, c, n, counts)
		}
	}
}

func TestFailoverMovesOnlyTheDepartedMembersTasks(t *testing.T) {
	all := members(5)
	full := New(all, 0)
	without := New(append(all[:2:2], all[3:]...), 0) // member 2 gone
	for i := range 5000 {
		id := task(i)
		before, after := full.Owner(id), without.Owner(id)
		if before != all[2] && before != after {
			t.Fatalf("task %d moved from %s to %s although its owner stayed", i, before, after)
		}
		if before == all[2] && after != full.Owners(id, 2)[1] {
			t.Fatalf("task %d did not go to the next owner on the ring", i)
		}
	}
}

func TestOwners(t *testing.T) {
	r := New(members(3), 0)
	o := r.Owners(task(1), 5)
	if len(o) != 3 || o[0] == o[1] || o[1] == o[2] || o[0] == o[2] {
		t.Fatalf("Owners = %v, want 3 distinct", o)
	}
	if New(nil, 0).Owner(task(1)) != "" {
		t.Fatal("empty ring has an owner")
	}
}
