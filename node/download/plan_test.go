package download

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/protocol"
)

func testLayout(t *testing.T, pieces int) protocol.Layout {
	t.Helper()
	l, err := protocol.NewLayout(int64(pieces)*protocol.MinPieceLength, protocol.MinPieceLength)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func digestOf(n uint32) protocol.Digest { return protocol.SHA256([]byte(fmt.Sprint(n))) }

func TestPlanPicksOnlyWhatTheParentHasRarestFirst(t *testing.T) {
	p := newPlan(protocol.TaskID{1}, "self", testLayout(t, 4), 0)
	p.setCursor(^uint32(0)) // no streaming reader
	a := p.addParent("a", false)
	b := p.addParent("b", false)
	// a has 0,1,2; b has 1,2: piece 0 is the rarest among a's.
	if p.announce(a, []protocol.PieceInfo{{Number: 0, Digest: digestOf(0)}, {Number: 1, Digest: digestOf(1)}, {Number: 2, Digest: digestOf(2)}}) {
		t.Fatal("unexpected conflict")
	}
	if p.announce(b, []protocol.PieceInfo{{Number: 1, Digest: digestOf(1)}, {Number: 2, Digest: digestOf(2)}}) {
		t.Fatal("unexpected conflict")
	}
	n, ok := p.pickForParent(a)
	if !ok || n != 0 {
		t.Fatalf("pick for a = %d, %v; want the rarest piece 0", n, ok)
	}
	for range 2 {
		n, ok := p.pickForParent(b)
		if !ok || (n != 1 && n != 2) {
			t.Fatalf("pick for b = %d, %v; b only has 1 and 2", n, ok)
		}
		p.finish(n, true, digestOf(n), time.Millisecond)
	}
	p.finish(0, true, digestOf(0), time.Millisecond)
	if p.done() {
		t.Fatal("done with piece 3 missing")
	}
	p.markHave(3, digestOf(3))
	if !p.done() {
		t.Fatal("not done with every piece verified")
	}
	if _, ok := p.pickForParent(a); ok {
		t.Fatal("picked a piece after done")
	}
}

func TestPlanDetectsContradictingDigest(t *testing.T) {
	p := newPlan(protocol.TaskID{1}, "self", testLayout(t, 2), 0)
	a := p.addParent("a", false)
	b := p.addParent("b", false)
	p.announce(a, []protocol.PieceInfo{{Number: 0, Digest: digestOf(0)}})
	if !p.announce(b, []protocol.PieceInfo{{Number: 0, Digest: digestOf(99)}}) {
		t.Fatal("a contradicting digest was accepted")
	}
	if p.trusted(0) != digestOf(0) {
		t.Fatal("the first digest was replaced")
	}
}

func TestPlanStreamingWindowGoesFirst(t *testing.T) {
	p := newPlan(protocol.TaskID{1}, "self", testLayout(t, 64), 4)
	a := p.addParent("a", true)
	var all []protocol.PieceInfo
	for n := range uint32(64) {
		all = append(all, protocol.PieceInfo{Number: n, Digest: digestOf(n)})
	}
	p.announce(a, all)
	p.setCursor(10)
	got := map[uint32]bool{}
	for range 4 {
		n, ok := p.pickForParent(a)
		if !ok || n < 10 || n >= 14 || got[n] {
			t.Fatalf("pick = %d (picked %v), want each of the window 10..13 once, before anything else", n, got)
		}
		got[n] = true
	}
}

func TestPlanDroppedParentStopsPicking(t *testing.T) {
	p := newPlan(protocol.TaskID{1}, "self", testLayout(t, 2), 0)
	a := p.addParent("a", false)
	done := make(chan bool)
	go func() {
		_, ok := p.pickForParent(a) // a has nothing: blocks
		done <- ok
	}()
	p.dropParent(a)
	if ok := <-done; ok {
		t.Fatal("a dropped parent got a piece")
	}
}

// A parent's pieces-sync stream may still deliver announcements after a
// piece worker dropped it (a liar): they must not count, or the origin
// fetcher waits forever for pieces only the dropped parent "holds".
func TestDroppedParentAnnouncementsDoNotCount(t *testing.T) {
	p := newPlan(protocol.TaskID{1}, "self", testLayout(t, 4), 0)
	p.setCursor(^uint32(0))
	liar := p.addParent("liar", false)
	p.announce(liar, []protocol.PieceInfo{{Number: 0, Digest: digestOf(0)}})
	p.dropParent(liar)
	var rest []protocol.PieceInfo
	for n := range uint32(4) {
		rest = append(rest, protocol.PieceInfo{Number: n, Digest: digestOf(n)})
	}
	if p.announce(liar, rest) {
		t.Fatal("unexpected conflict")
	}
	p.setComplete(liar)
	for n, r := range p.rarity {
		if r != 0 {
			t.Fatalf("piece %d counts %d holders after its only parent was dropped: the origin fetcher would wait for it forever", n, r)
		}
	}
	if n, ok := p.pickForSource(sourcePolicy{stall: time.Hour, all: true}); !ok {
		t.Fatalf("source picked nothing (%d)", n)
	}
}

func TestOwnerIsDeterministicAndSpread(t *testing.T) {
	peers := []peer.ID{"p1", "p2", "p3", "p4"}
	p1 := newPlan(protocol.TaskID{7}, "p1", testLayout(t, 400), 0)
	p2 := newPlan(protocol.TaskID{7}, "p2", testLayout(t, 400), 0)
	counts := map[peer.ID]int{}
	for n := range uint32(400) {
		o1 := p1.owner(n, peers)
		// Order of the candidate list must not matter.
		o2 := p2.owner(n, []peer.ID{"p4", "p3", "p2", "p1"})
		if o1 != o2 {
			t.Fatalf("piece %d: owners %s and %s differ between nodes", n, o1, o2)
		}
		counts[o1]++
	}
	for _, id := range peers {
		if counts[id] < 60 { // expected 100 each
			t.Fatalf("owner spread %v is badly skewed", counts)
		}
	}
}

func TestSourcePicksOnlyOwnedUnheldPieces(t *testing.T) {
	p := newPlan(protocol.TaskID{3}, "self", testLayout(t, 50), 0)
	p.setCursor(^uint32(0))
	other := p.addParent("other", false)
	pol := sourcePolicy{stall: time.Hour}
	owners := []peer.ID{"self", "other"}
	want := map[uint32]bool{}
	for n := range uint32(50) {
		if p.owner(n, owners) == "self" {
			want[n] = true
		}
	}
	for range len(want) {
		n, ok := p.pickForSource(pol)
		if !ok || !want[n] {
			t.Fatalf("source picked %d (ok=%v), which self does not own", n, ok)
		}
		delete(want, n)
	}
	// The other peer's pieces are not ours while it makes progress; once it
	// stalls (nothing new for long after the swarm's first piece) they are.
	other.lastNew = time.Now().Add(-2 * time.Hour)
	p.firstSeen = other.lastNew
	n, ok := p.pickForSource(pol)
	if !ok || p.owner(n, owners) != "other" {
		t.Fatalf("after the owner stalled, source picked %d (ok=%v)", n, ok)
	}
}

// A parent whose pieces-sync header says "complete" holds every piece even
// before its announcement arrives: the origin fetchers wait for that
// announcement (a one-piece layer was fetched from the origin a second time
// in the gap), but not for ever.
func TestSourceWaitsForACompleteParentsAnnouncement(t *testing.T) {
	all := func(n uint32) []protocol.PieceInfo {
		var out []protocol.PieceInfo
		for i := range n {
			out = append(out, protocol.PieceInfo{Number: i, Digest: digestOf(i)})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		pol      sourcePolicy
		announce bool          // the parent announces its pieces
		age      time.Duration // how long ago the header came
		want     bool          // the origin may take piece 0
	}{
		{"announcement due", sourcePolicy{stall: time.Hour}, false, 0, false},
		{"announcement due, scheduled", sourcePolicy{stall: time.Hour, all: true}, false, 0, false},
		{"announced", sourcePolicy{stall: time.Hour}, true, 0, false},
		{"announcement overdue", sourcePolicy{stall: time.Hour}, false, 3 * time.Second, true},
		{"announcement overdue, scheduled", sourcePolicy{stall: time.Hour, all: true}, false, 3 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlan(protocol.TaskID{5}, "self", testLayout(t, 1), 0)
			p.completeGrace = 2 * time.Second
			ps := p.addParent("parent", true)
			ps.added = ps.added.Add(-tc.age)
			if tc.announce {
				p.announce(ps, all(1))
			}
			if got := p.claimForSource(0, tc.pol); got != tc.want {
				t.Fatalf("origin may take piece 0: %v, want %v", got, tc.want)
			}
			if tc.want {
				return
			}
			// Dropping the parent frees the piece for the origin at once.
			p.dropParent(ps)
			if !p.claimForSource(0, tc.pol) {
				t.Fatal("the parent is gone and the origin still may not take piece 0")
			}
		})
	}
}

// A slow origin shared by many fetchers makes every piece slow: an owner
// that has announced nothing for the base stall time is not stuck when this
// node's own fetches take longer than that.
func TestStallAdaptsToOwnFetchTimes(t *testing.T) {
	now := time.Now()
	base := 10 * time.Second
	cases := []struct {
		name      string
		durations []time.Duration
		inFlight  time.Duration // age of this node's oldest fetch in flight (0: none)
		noPiece   bool          // no piece verified or announced anywhere yet
		want      time.Duration
	}{
		{name: "no piece anywhere yet: the longest", noPiece: true, want: maxStallFactor * base},
		{name: "no evidence: base", want: base},
		{name: "fast fetches: base", durations: []time.Duration{time.Second, 2 * time.Second}, want: base},
		{name: "slow finished fetches: twice the longest", durations: []time.Duration{3 * time.Second, 30 * time.Second}, want: 60 * time.Second},
		{name: "slow fetch in flight: twice its age", inFlight: 25 * time.Second, want: 50 * time.Second},
		{name: "capped at ten times base", inFlight: time.Hour, want: 10 * base},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlan(protocol.TaskID{9}, "self", testLayout(t, 4), 0)
			p.durations = tc.durations
			if !tc.noPiece {
				p.firstSeen = now.Add(-time.Hour)
			}
			if tc.inFlight > 0 {
				p.flight[2] = 1
				p.started[2] = now.Add(-tc.inFlight)
			}
			if got := p.stallAfterLocked(now, base); got != tc.want {
				t.Fatalf("stall after %v, want %v", got, tc.want)
			}
			// An owner quiet for just under the threshold still owns its pieces.
			o := p.addParent("owner", false)
			p.parents["owner"].lastNew = now.Add(-tc.want + time.Second)
			if got := p.sourcingPeersLocked(now, sourcePolicy{stall: base}); len(got) != 2 {
				t.Fatalf("sourcing peers %v: the owner %v was taken over too early", got, o)
			}
		})
	}
}

// Every owner's first piece comes over the same origin link: an owner's
// stall clock starts no sooner than the first piece seen anywhere, so the
// owners are not taken over together the moment the first piece lands.
func TestOwnerStallClockStartsAtFirstPiece(t *testing.T) {
	now := time.Now()
	base := 10 * time.Second
	cases := []struct {
		name      string
		lastNew   time.Duration // how long ago the owner last announced (or joined)
		firstSeen time.Duration // how long ago the first piece was seen
		owns      bool          // the owner still fetches its pieces
	}{
		{name: "first piece just landed", lastNew: time.Minute, firstSeen: time.Second, owns: true},
		{name: "quiet since long before the first piece", lastNew: time.Minute, firstSeen: base + time.Second, owns: false},
		{name: "announced after the first piece", lastNew: base - time.Second, firstSeen: time.Minute, owns: true},
		{name: "quiet since after the first piece", lastNew: base + time.Second, firstSeen: time.Minute, owns: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlan(protocol.TaskID{9}, "self", testLayout(t, 4), 0)
			p.addParent("owner", false)
			p.parents["owner"].lastNew = now.Add(-tc.lastNew)
			p.firstSeen = now.Add(-tc.firstSeen)
			got := len(p.sourcingPeersLocked(now, sourcePolicy{stall: base})) == 2
			if got != tc.owns {
				t.Fatalf("owner still sourcing: %v, want %v", got, tc.owns)
			}
		})
	}
}

// A piece verified here or announced by a parent starts the owners' clock.
func TestFirstPieceSeen(t *testing.T) {
	cases := []struct {
		name string
		see  func(p *plan, ps *parentState)
	}{
		{"verified here", func(p *plan, _ *parentState) { p.markHave(1, protocol.SHA256([]byte("x"))) }},
		{"announced by a parent", func(p *plan, ps *parentState) {
			p.announce(ps, []protocol.PieceInfo{{Number: 2, Digest: protocol.SHA256([]byte("y"))}})
		}},
		{"a complete parent", func(p *plan, ps *parentState) { p.setComplete(ps) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlan(protocol.TaskID{9}, "self", testLayout(t, 4), 0)
			ps := p.addParent("parent", false)
			if !p.firstSeen.IsZero() {
				t.Fatal("first piece seen before any")
			}
			tc.see(p, ps)
			if p.firstSeen.IsZero() {
				t.Fatal("first piece not seen")
			}
		})
	}
}

// A source run covers the consecutive pieces this node may fetch from the
// origin now, and stops before one a parent holds or a fetch has taken.
func TestSourceRunEnd(t *testing.T) {
	p := newPlan(protocol.TaskID{4}, "self", testLayout(t, 10), 0)
	p.setCursor(^uint32(0))
	pol := sourcePolicy{stall: time.Hour, all: true}
	peer := p.addParent("peer", false)
	p.announce(peer, []protocol.PieceInfo{{Number: 6, Digest: digestOf(6)}})
	p.markHave(2, digestOf(2))
	for _, tc := range []struct {
		name    string
		from    uint32
		wantEnd uint32
	}{
		{"up to a verified piece", 0, 2},
		{"up to a piece a parent holds", 3, 6},
		{"to the end", 7, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.sourceRunEnd(tc.from, pol); got != tc.wantEnd {
				t.Fatalf("run from %d ends at %d, want %d", tc.from, got, tc.wantEnd)
			}
		})
	}
	n, ok := p.pickForSource(pol)
	if !ok || n != 0 {
		t.Fatalf("first source pick %d (%v), want 0: in order", n, ok)
	}
	if p.claimForSource(0, pol) {
		t.Fatal("a piece in flight was claimed again")
	}
	if !p.claimForSource(1, pol) || p.claimForSource(2, pol) || p.claimForSource(6, pol) {
		t.Fatal("claims: want 1 yes, 2 (verified) and 6 (held by a parent) no")
	}
}

// A plan is stranded when it stopped progressing and some missing piece
// is neither held by a parent nor being fetched.
func TestPlanStranded(t *testing.T) {
	p := newPlan(protocol.TaskID{5}, "self", testLayout(t, 2), 0)
	a := p.addParent("a", false)
	p.announce(a, []protocol.PieceInfo{{Number: 0, Digest: digestOf(0)}, {Number: 1, Digest: digestOf(1)}})
	if p.stranded(0) {
		t.Fatal("stranded while a parent holds every missing piece")
	}
	p.dropParent(a)
	if !p.stranded(0) {
		t.Fatal("not stranded after the only holder was dropped")
	}
	if p.stranded(time.Hour) {
		t.Fatal("stranded before the idle time passed")
	}
	p.startLocked(0) // a fetch (the origin, say) is under way for 0, not for 1
	if !p.stranded(0) {
		t.Fatal("piece 1 has no holder and no fetch")
	}
	p.markHave(1, digestOf(1))
	if p.stranded(0) {
		t.Fatal("stranded while the only missing piece is being fetched")
	}
}

func TestSlowPiece(t *testing.T) {
	for _, tc := range []struct {
		name   string
		recent []time.Duration // the download's recent piece times
		took   []time.Duration // this parent's pieces, in turn
		want   bool            // dropped after the last
	}{
		{"two slow pieces in a row", []time.Duration{100, 100, 100, 100}, []time.Duration{3 * time.Second, 3 * time.Second}, true},
		{"one slow piece", []time.Duration{100, 100, 100, 100}, []time.Duration{3 * time.Second}, false},
		{"a fast piece between", []time.Duration{100, 100, 100, 100}, []time.Duration{3 * time.Second, 100, 3 * time.Second}, false},
		{"slow but under the minimum", []time.Duration{1, 1, 1, 1}, []time.Duration{time.Second, time.Second}, false},
		{"everyone is slow", []time.Duration{3 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second}, []time.Duration{4 * time.Second, 4 * time.Second}, false},
		{"too few pieces to judge", []time.Duration{100}, []time.Duration{3 * time.Second, 3 * time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlan(protocol.TaskID{6}, "self", testLayout(t, 2), 0)
			ps := p.addParent("a", false)
			p.durations = append(p.durations, tc.recent...)
			var got bool
			for _, d := range tc.took {
				got = p.slowPiece(ps, d)
			}
			if got != tc.want {
				t.Fatalf("dropped = %v, want %v", got, tc.want)
			}
		})
	}
}
